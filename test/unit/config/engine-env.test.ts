import { describe, expect, it } from "vitest";
import { engineSharingFromEnv } from "../../../src/config/engine-env.js";
import { InvalidOptionError } from "../../../src/errors.js";

describe("engineSharingFromEnv", () => {
  it("unset: the default pool, and as many runs as it holds", () => {
    const sharing = engineSharingFromEnv({});
    expect(sharing.subnetPool.text).toBe("172.29.0.0/16");
    expect(sharing.maxConcurrentRuns).toBe(2048);
    expect(sharing.limitFrom).toBe("pool");
    expect(sharing.warmPool).toBe(1);
  });

  it("PERSTACK_WARM_POOL: how many warm shells to keep, 0 to 8", () => {
    expect(engineSharingFromEnv({ PERSTACK_WARM_POOL: "0" }).warmPool).toBe(0);
    expect(engineSharingFromEnv({ PERSTACK_WARM_POOL: " 8 " }).warmPool).toBe(8);
    expect(engineSharingFromEnv({ PERSTACK_WARM_POOL: "" }).warmPool).toBe(1);
  });

  it("PERSTACK_SUBNET_POOL and PERSTACK_MAX_CONCURRENT_RUNS", () => {
    const sharing = engineSharingFromEnv({ PERSTACK_SUBNET_POOL: " 10.77.0.0/24 ", PERSTACK_MAX_CONCURRENT_RUNS: "3" });
    expect(sharing.subnetPool.text).toBe("10.77.0.0/24");
    expect(sharing.maxConcurrentRuns).toBe(3);
    expect(sharing.limitFrom).toBe("env");
    expect(engineSharingFromEnv({ PERSTACK_SUBNET_POOL: "10.77.0.0/24" }).maxConcurrentRuns).toBe(8);
  });

  it.each([
    [{ PERSTACK_SUBNET_POOL: "10.77.0.1/24" }, "PERSTACK_SUBNET_POOL: \"10.77.0.1/24\" has host bits set; did you mean 10.77.0.0/24?"],
    [{ PERSTACK_MAX_CONCURRENT_RUNS: "0" }, "PERSTACK_MAX_CONCURRENT_RUNS: \"0\" is not a whole number of runs"],
    [{ PERSTACK_MAX_CONCURRENT_RUNS: "two" }, "is not a whole number of runs, 1 or more"],
    [{ PERSTACK_MAX_CONCURRENT_RUNS: "1.5" }, "is not a whole number"],
    [{ PERSTACK_SUBNET_POOL: "10.77.0.0/26", PERSTACK_MAX_CONCURRENT_RUNS: "3" }, "the subnet pool 10.77.0.0/26 holds only 2 runs at once"],
    [{ PERSTACK_WARM_POOL: "9" }, "PERSTACK_WARM_POOL: \"9\" is not a number of warm shells from 0 to 8; 0 keeps none"],
    [{ PERSTACK_WARM_POOL: "-1" }, "PERSTACK_WARM_POOL: \"-1\" is not a number of warm shells"],
    [{ PERSTACK_WARM_POOL: "one" }, "PERSTACK_WARM_POOL: \"one\" is not a number of warm shells"],
  ])("%o is bad input: %s", (env, message) => {
    expect(() => engineSharingFromEnv(env)).toThrow(InvalidOptionError);
    expect(() => engineSharingFromEnv(env)).toThrow(message);
  });
});
