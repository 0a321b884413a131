// `log` and `jobs` stay light (test/unit/cli/lazy-loading.test.ts): they look for orphaned jobs with a stat per job,
// and load the Docker client and the collector only when there is one to take over (take-over.ts).
import { findOrphanedRuns } from "../job/orphaned-runs.js";
import { perstackStorageDir } from "../storage/storage-dir.js";

export async function takeOverOrphansIn(cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  const perstackDir = perstackStorageDir(cwd, env);
  if (findOrphanedRuns(perstackDir).length === 0) return;
  const { takeOverOrphans } = await import("./take-over.js");
  await takeOverOrphans(perstackDir);
}
