// What happens to the user's workspace around one run, in either mode:
// - bind: the workspace is the agent's /workspace; the policy files get shadows and are checked afterwards
//   (workspace/policy-guard.ts).
// - copy: the workspace is packed into the run's volume before the agent starts, and what the agent left there is
//   copied back after it stops, all at once or not at all (workspace/copy-back.ts); policy files and perstack/ are
//   never written back.
// Either way, every change the agent made that is not applied is reported, with where its version is kept.
import { join } from "node:path";
import type Docker from "dockerode";
import { WorkspaceCopyError } from "../errors.js";
import type { SandboxPlan } from "../plan/sandbox-plan.js";
import type { WorkspaceHooks } from "../sandbox/run-sandbox.js";
import { fillWorkspace, readWorkspace } from "../sandbox/workspace-volume.js";
import { copyBack, type CopyBackResult } from "../workspace/copy-back.js";
import { copyBackNotices, relativeOrAbsolute, type CopyBackNotice } from "../workspace/copy-back-notices.js";
import { packWorkspace, type WorkspaceSnapshot } from "../workspace/pack-workspace.js";
import { createShadows, removeShadows, restorePolicy, snapshotPolicy, type PolicyChange, type PolicySnapshot, type Shadows } from "../workspace/policy-guard.js";

/** A workspace change the user must hear about. */
export type WorkspaceNotice = CopyBackNotice;

export interface WorkspaceOutcome {
  mode: "bind" | "copy";
  notices: WorkspaceNotice[];
  /** Copy mode: what was applied. */
  applied?: { created: string[]; modified: string[]; deleted: string[] };
  /** Copy mode: why nothing was applied (the workspace is as it was before the run). */
  copyError?: string;
}

export interface WorkspaceSessionOptions {
  plan: SandboxPlan;
  /** Where the agent's rejected versions go: perstack/jobs/<job>/runs/<run>/rejected. */
  keepDir: string;
  /** Owner given to files the agent creates in copy mode. */
  owner: { uid: number; gid: number };
  /** Shown in messages instead of absolute paths when shorter. */
  cwd: string;
  /** Copy-back limits (bytes, entries). */
  limits: { maxBytes: number; maxEntries: number };
}

export class WorkspaceSession {
  private policy: PolicySnapshot | undefined;
  private shadows: Shadows | undefined;
  private snapshot: Promise<WorkspaceSnapshot> | undefined;
  private readonly outcome: WorkspaceOutcome;

  constructor(private readonly options: WorkspaceSessionOptions) {
    this.outcome = { mode: options.plan.agent.workspace.mode, notices: [] };
  }

  /** Before the sandbox starts: reads the policy files, makes shadows (bind mode), returns the sandbox's hooks. */
  async prepare(): Promise<WorkspaceHooks> {
    const workspace = this.options.plan.agent.workspace;
    const agent = parseUser(this.options.plan.agent.user);
    if (workspace.mode === "bind") {
      this.policy = await snapshotPolicy(workspace.source, workspace.protected.files);
      this.shadows = await createShadows(this.policy, agent);
      return { mounts: this.shadows.mounts };
    }
    return {
      mounts: [],
      fill: async (container: Docker.Container) => {
        const packed = packWorkspace(workspace.source, { exclude: workspace.exclude, uid: agent.uid, gid: agent.gid, limits: this.packLimits() });
        this.snapshot = packed.snapshot;
        // Both must settle: a refused workspace (limits) rejects the snapshot and aborts the stream.
        await Promise.all([fillWorkspace(container, packed.stream), packed.snapshot]);
      },
      collect: async (container: Docker.Container) => {
        await this.copyBack(container);
      },
    };
  }

  /** After the sandbox is gone (bind mode: put the policy files back). Always called, whatever happened. */
  async finish(): Promise<WorkspaceOutcome> {
    if (this.policy) {
      const changes = await restorePolicy(this.policy, this.shadows, this.options.keepDir);
      for (const change of changes) this.outcome.notices.push(policyNotice(change, this.options.cwd));
    }
    await removeShadows(this.shadows);
    return this.outcome;
  }

  private async copyBack(container: Docker.Container): Promise<void> {
    const workspace = this.options.plan.agent.workspace;
    if (workspace.mode !== "copy" || !this.snapshot) return;
    let result: CopyBackResult;
    try {
      result = await copyBack({
        workspace: workspace.source,
        snapshot: await this.snapshot,
        archive: await readWorkspace(container),
        archiveRoot: "workspace",
        protectedFiles: workspace.protected.files,
        protectedTrees: workspace.protected.trees,
        keepDir: this.options.keepDir,
        owner: this.options.owner,
        limits: this.packLimits(),
      });
    } catch (error) {
      if (!(error instanceof WorkspaceCopyError)) throw error;
      this.outcome.copyError = error.message;
      return;
    }
    this.outcome.applied = { created: result.created, modified: result.modified, deleted: result.deleted };
    this.outcome.notices.push(...copyBackNotices(result, workspace.protected.files, this.options.cwd));
  }

  private packLimits() {
    return { maxEntries: this.options.limits.maxEntries, maxTotalBytes: this.options.limits.maxBytes, maxFileBytes: this.options.limits.maxBytes };
  }
}

function policyNotice(change: PolicyChange, cwd: string): WorkspaceNotice {
  const where = change.where === "sandbox" ? " inside the sandbox (your file was never changed)" : "";
  const kept = change.keptAt ? `; its version is kept in ${relativeOrAbsolute(cwd, change.keptAt)}` : "";
  return {
    code: "policy-change-rejected",
    path: change.path,
    message: `the agent ${change.change} ${change.path}${where}; the next run uses the original${kept}`,
  };
}

function parseUser(user: string): { uid: number; gid: number } {
  const [uid, gid] = user.split(":").map(Number);
  return { uid: uid!, gid: gid ?? uid! };
}

export function rejectedDir(runDir: string): string {
  return join(runDir, "rejected");
}
