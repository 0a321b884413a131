// Labels on the containers the benchmark starts itself (the fake model server, bare runs): its session, and the
// process that owns them, so that a later benchmark removes what one that was killed outright left behind.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { hostname } from "node:os";

export const BENCH_LABEL = "perstack.bench";
const OWNER_LABEL = "perstack.bench-owner";

export function benchLabels(session: string): Record<string, string> {
  return { [BENCH_LABEL]: session, [OWNER_LABEL]: `${hostname()}:${process.pid}` };
}

/** True when the labels name a benchmark process on this host that no longer exists. */
export function benchOwnerGone(labels: Record<string, string> | undefined): boolean {
  const owner = labels?.[OWNER_LABEL];
  if (!owner) return false;
  const at = owner.lastIndexOf(":");
  const pid = Number(owner.slice(at + 1));
  if (owner.slice(0, at) !== hostname() || !Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
