// The agent's version of the workspace once its archive has been read, checked and written to the staging
// directory: plain data the planner compares against the snapshot.
import type { SkippedPath } from "./workspace-snapshot.js";

interface StagedBase {
  /** Workspace-relative posix path. */
  path: string;
  mtime?: Date;
}

export type StagedEntry =
  | (StagedBase & {
      type: "file";
      /** Permission bits only. */
      mode: number;
      size: number;
      sha256: string;
      /** Absolute path of the staged content, on the workspace's filesystem so placing it is a rename. */
      stagedAt: string;
    })
  | (StagedBase & { type: "directory"; mode: number })
  | (StagedBase & { type: "symlink"; linkTarget: string });

export interface StagedTree {
  /** Parents before children, in archive order; the workspace root is not an entry. */
  entries: Map<string, StagedEntry>;
  /** Archive entries that were not staged (fifos, devices, unknown types). */
  skipped: SkippedPath[];
}
