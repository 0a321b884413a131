// Job, run and checkpoint ids name directories and files under perstack/jobs, and some of them come from the
// agent's container (the built-in engine issues checkpoint and delegated run ids). So every id that names
// anything is one of these: letters, digits, '-' and '_', starting with a letter or digit, at most 128 long.
// Perstack's own ids (cuid2) and this project's (base-36 time + hex) fit.
import { createHash, randomBytes } from "node:crypto";

export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** SAFE_ID without its bounded repetition, which V8 runs about a third slower: the length is checked apart. */
const SAFE_ID_UNBOUNDED = /^[A-Za-z0-9][\w-]*$/;

/** Whether `value` is a safe id (SAFE_ID). The collector asks it for several ids of every event. */
export function isSafeId(value: unknown): value is string {
  return typeof value === "string" && value.length <= 128 && SAFE_ID_UNBOUNDED.test(value);
}


/**
 * Random bytes drawn a few kilobytes at a time, and the time prefix kept while the clock shows the same
 * millisecond: a run takes several ids per step, and the collector's throughput depends on their cost.
 */
const POOL_BYTES = 6 * 1024;
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
let pool = randomBytes(POOL_BYTES);
let poolAt = 0;
let prefixAt = -1;
let prefix = "";

/** A new id: base-36 time then 12 random hex digits. Sortable by creation time, short, and a safe id. */
export function newId(): string {
  const now = Date.now();
  if (now !== prefixAt) {
    prefixAt = now;
    prefix = now.toString(36);
  }
  if (poolAt + 6 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const at = poolAt;
  poolAt += 6;
  return prefix + HEX[pool[at]!]! + HEX[pool[at + 1]!]! + HEX[pool[at + 2]!]! + HEX[pool[at + 3]!]! + HEX[pool[at + 4]!]! + HEX[pool[at + 5]!]!;
}

/**
 * Ids that the same seed always gives in the same order: the seed's hash, then a counter. A run's parser draws its
 * ids from one of these, seeded with the run's id, so that reading the agent's output again (a collector that takes
 * over a run whose perstack process died, job/recover-run.ts) makes the very events already recorded, which are then
 * recognised and not recorded twice.
 */
export function idSequence(seed: string): () => string {
  const prefix = createHash("sha256").update(seed).digest("hex").slice(0, 16);
  let next = 0;
  return () => `${prefix}-${(next++).toString(36)}`;
}
