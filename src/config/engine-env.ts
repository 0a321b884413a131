// PURE: how runs share one Docker engine, from the environment: the address pool their networks come from
// (PERSTACK_SUBNET_POOL) and how many may run at once (PERSTACK_MAX_CONCURRENT_RUNS). Read before anything
// starts, so a bad value is bad input (exit code 2) rather than a failure halfway through a run.
import { InvalidOptionError } from "../errors.js";
import { DEFAULT_SUBNET_POOL, parseSubnetPool, runsThePoolHolds, type SubnetPool } from "../plan/subnet-pool.js";
import { DEFAULT_WARM_POOL, MAX_WARM_POOL, WARM_POOL_ENV } from "../plan/warm-shell.js";

export const SUBNET_POOL_ENV = "PERSTACK_SUBNET_POOL";
export const MAX_CONCURRENT_RUNS_ENV = "PERSTACK_MAX_CONCURRENT_RUNS";

export interface EngineSharing {
  subnetPool: SubnetPool;
  /**
   * Runs (of any perstack process on the engine) that may have a sandbox at once; one more waits for a slot. Never
   * more than the pool holds, so a run waits for addresses rather than failing for want of them.
   */
  maxConcurrentRuns: number;
  /** Where maxConcurrentRuns came from, for the waiting message. */
  limitFrom: "env" | "pool";
  /**
   * Warm shells to keep ready on the engine (PERSTACK_WARM_POOL, plan/warm-shell.ts; default DEFAULT_WARM_POOL); 0:
   * none, every run builds its own sandbox, and a run's teardown removes the free shells earlier runs left.
   */
  warmPool: number;
}

export function engineSharingFromEnv(env: NodeJS.ProcessEnv): EngineSharing {
  const poolText = env[SUBNET_POOL_ENV]?.trim() || DEFAULT_SUBNET_POOL;
  const pool = parseSubnetPool(poolText);
  if ("problem" in pool) throw new InvalidOptionError(`${SUBNET_POOL_ENV}: ${pool.problem}`);
  const poolLimit = runsThePoolHolds(pool);
  const warmPool = warmPoolFromEnv(env);
  const limitText = env[MAX_CONCURRENT_RUNS_ENV]?.trim();
  if (!limitText) return { subnetPool: pool, maxConcurrentRuns: poolLimit, limitFrom: "pool", warmPool };
  if (!/^\d+$/.test(limitText) || Number(limitText) < 1 || !Number.isSafeInteger(Number(limitText))) {
    throw new InvalidOptionError(`${MAX_CONCURRENT_RUNS_ENV}: "${limitText}" is not a whole number of runs, 1 or more; unset it to allow as many as the subnet pool holds (${poolLimit})`);
  }
  const limit = Number(limitText);
  if (limit > poolLimit) {
    throw new InvalidOptionError(
      `${MAX_CONCURRENT_RUNS_ENV}=${limit}: the subnet pool ${pool.text} holds only ${poolLimit} runs at once; lower it, or give ${SUBNET_POOL_ENV} a larger range`,
    );
  }
  return { subnetPool: pool, maxConcurrentRuns: limit, limitFrom: "env", warmPool };
}

function warmPoolFromEnv(env: NodeJS.ProcessEnv): number {
  const text = env[WARM_POOL_ENV]?.trim();
  if (!text) return DEFAULT_WARM_POOL;
  if (!/^\d+$/.test(text) || Number(text) > MAX_WARM_POOL) {
    throw new InvalidOptionError(`${WARM_POOL_ENV}: "${text}" is not a number of warm shells from 0 to ${MAX_WARM_POOL}; 0 keeps none`);
  }
  return Number(text);
}
