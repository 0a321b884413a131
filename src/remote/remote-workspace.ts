// The local workspace of a `perstack run --server`: what is uploaded, and how the run's result is applied back.
//
// The upload is what a local copy-mode run would give its sandbox (workspace/pack-workspace.ts), without perstack/
// (the jobs) and without the env files perstack.toml names (.env, .env.local): those hold the user's keys, and a
// server's runs use the tenant's secrets instead. perstack serve takes files and directories only, so symlinks stay
// home too. Packing records a snapshot, as for a local run.
//
// When the run ends, the server's workspace (GET /v1/runs/{jobId}/workspace, a tar.gz the agent shaped) goes
// through the same copy-back as a local copy-mode run (workspace/copy-back.ts): staged and checked whole (no path
// escapes, links or sizes past the limits), planned against the snapshot, policy files and perstack/ refused and
// kept aside, applied as a journal that is undone on failure, and a path the user changed meanwhile left alone and
// reported as a conflict. Two things differ from a local run:
// - the server stores an upload's files 0644 or 0755 and its directories 0755, so an unchanged mode comes back
//   normalized; copy-back takes such a mode as the snapshot's own (uploadedMode);
// - a continuation (--continue-job) uploads nothing: its baseline is the server's workspace as the previous
//   invocation left it, downloaded before the continuation starts, with each path's local facts where the local file
//   is still that content (serverBaseline). Only what the continuation changes is applied, and a local path that
//   differs from the server's baseline is a conflict.
import { mkdtemp, rm } from "node:fs/promises";
import { createWriteStream, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { pipeline as pipe, Readable, Writable } from "node:stream";
import { createGunzip, createGzip } from "node:zlib";
import { InvalidOptionError } from "../errors.js";
import { insideRoot, policyPaths, type PolicyPaths } from "../plan/policy-files.js";
import { IMPLICIT_ARCHIVE_ROOT } from "../workspace/archive-entry.js";
import { copyBack, type CopyBackResult } from "../workspace/copy-back.js";
import { packWorkspace } from "../workspace/pack-workspace.js";
import { stageArchive } from "../workspace/stage-archive.js";
import type { StagedEntry } from "../workspace/staged-tree.js";
import { nodeWorkspaceFs } from "../workspace/workspace-fs.js";
import { resolveLimits, type WorkspaceLimits } from "../workspace/workspace-limits.js";
import type { HostFacts, SnapshotEntry, WorkspaceSnapshot } from "../workspace/workspace-snapshot.js";

export interface RemoteWorkspace {
  /** The local workspace, absolute. */
  root: string;
  /** Relative paths left out of the upload: perstack/ and the env files. */
  exclude: string[];
  /** What the agent may never change here (as for a local run): perstack.toml, the env files, perstack/. */
  protected: PolicyPaths;
  /** Files the agent creates get the workspace's owner (applied only when running as root). */
  owner: { uid: number; gid: number };
  limits: Partial<WorkspaceLimits>;
}

export interface RemoteWorkspaceInput {
  cwd: string;
  /** --workspace; default the current directory. */
  workspace?: string;
  configPath: string;
  configExplicit: boolean;
  /** envPath as perstack.toml gives it (or the default), relative to the config's directory. */
  envPath: readonly string[];
  perstackDir: string;
  /** --copy-limit: the most the upload, and the run's workspace coming back, may hold. */
  maxBytes?: number;
}

/** Entries the workspace and the server's copy of it may hold (as for a local copy-mode run). */
const MAX_ENTRIES = 500_000;

export function remoteWorkspace(input: RemoteWorkspaceInput): RemoteWorkspace {
  const root = resolve(input.cwd, input.workspace ?? ".");
  let stat;
  try {
    stat = statSync(root);
  } catch {
    throw new InvalidOptionError(`--workspace ${root}: no such directory; create it or pass another path`);
  }
  if (!stat.isDirectory()) throw new InvalidOptionError(`--workspace ${root}: not a directory`);
  const policy = policyPaths({ workspace: root, cwd: input.cwd, configPath: input.configPath, configExplicit: input.configExplicit, envPath: input.envPath, perstackDir: input.perstackDir });
  const configDir = resolve(input.configPath, "..");
  const envFiles = input.envPath.map((entry) => insideRoot(root, resolve(configDir, entry))).filter((path): path is string => path !== undefined);
  return {
    root,
    exclude: [...new Set([...policy.trees, ...envFiles])],
    protected: policy,
    owner: { uid: stat.uid, gid: stat.gid },
    limits: { maxEntries: MAX_ENTRIES, ...(input.maxBytes !== undefined ? { maxTotalBytes: input.maxBytes, maxFileBytes: input.maxBytes } : {}) },
  };
}

/** The mode perstack serve gives an uploaded entry (src/server/workspace-upload.ts, extractUpload). */
export function uploadedMode(type: "file" | "directory", mode: number): number {
  if (type === "directory") return 0o755;
  return (mode & 0o111) === 0 ? 0o644 : 0o755;
}

export interface PackedUpload {
  /** The tar.gz, in a directory of its own (mode 0700). */
  file: string;
  snapshot: WorkspaceSnapshot;
  dispose(): Promise<void>;
}

/** Packs the workspace for upload into a temporary tar.gz; the caller disposes of it once sent. */
export async function packUpload(workspace: RemoteWorkspace): Promise<PackedUpload> {
  const dir = await mkdtemp(join(tmpdir(), "perstack-upload-"));
  const file = join(dir, "workspace.tar.gz");
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const packed = packWorkspace(workspace.root, { exclude: workspace.exclude, uid: workspace.owner.uid, gid: workspace.owner.gid, limits: workspace.limits, leaveOutSymlinks: true });
    await Promise.all([pipeline(packed.stream, createGzip(), createWriteStream(file, { mode: 0o600 })), packed.snapshot]);
    return { file, snapshot: await packed.snapshot, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** The workspace's snapshot as packing records it, without keeping the archive. */
export async function localSnapshot(workspace: RemoteWorkspace): Promise<WorkspaceSnapshot> {
  const packed = packWorkspace(workspace.root, { exclude: workspace.exclude, uid: workspace.owner.uid, gid: workspace.owner.gid, limits: workspace.limits });
  const nowhere = new Writable({ write: (_chunk, _encoding, done) => done() });
  await Promise.all([pipeline(packed.stream, nowhere), packed.snapshot]);
  return packed.snapshot;
}

/** Facts no path has: a path given these differs from the baseline, whatever it is now. */
const DIFFERS: HostFacts = { mtimeMs: -1, ino: -1, dev: -1, uid: -1, gid: -1 };

/**
 * The baseline a continuation's changes are applied against: the server's workspace before it (`archive`, a tar.gz),
 * each path with the local snapshot's facts where the local path is still what the server has, and facts no path has
 * where it is not (so any change there is a conflict).
 */
export async function serverBaseline(archive: Readable, workspace: RemoteWorkspace, local: WorkspaceSnapshot): Promise<WorkspaceSnapshot> {
  const staging = await mkdtemp(join(tmpdir(), "perstack-baseline-"));
  try {
    const tree = await stageArchive({
      fs: nodeWorkspaceFs,
      archive: gunzipped(archive),
      archiveRoot: IMPLICIT_ARCHIVE_ROOT,
      stagingDir: staging,
      limits: resolveLimits(workspace.limits),
      reservedNames: new Set(),
      workspace: workspace.root,
    });
    const here = new Map(local.entries.map((entry) => [entry.path, entry]));
    const entries = [...tree.entries.values()].map((entry) => baselineEntry(entry, here.get(entry.path)));
    return { root: local.root, entries, skipped: [], excluded: local.excluded };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function baselineEntry(server: StagedEntry, local: SnapshotEntry | undefined): SnapshotEntry {
  if (local && sameAsServer(server, local)) return local;
  const base = { path: server.path, host: DIFFERS };
  switch (server.type) {
    case "file":
      return { ...base, type: "file", mode: server.mode, size: server.size, sha256: server.sha256 };
    case "directory":
      return { ...base, type: "directory", mode: server.mode, size: 0 };
    case "symlink":
      return { ...base, type: "symlink", mode: 0o777, size: 0, linkTarget: server.linkTarget };
  }
}

function sameAsServer(server: StagedEntry, local: SnapshotEntry): boolean {
  if (server.type !== local.type) return false;
  switch (server.type) {
    case "file":
      return local.sha256 === server.sha256 && uploadedMode("file", local.mode) === server.mode;
    case "directory":
      return uploadedMode("directory", local.mode) === server.mode;
    case "symlink":
      return local.linkTarget === server.linkTarget;
  }
}

/**
 * Applies the server's workspace (`archive`, a tar.gz) to the local one: what changed against `snapshot`, through
 * copy-back. `keepDir`: where the agent's versions that were not applied are kept (protected/, conflicts/).
 */
export function applyServerWorkspace(workspace: RemoteWorkspace, snapshot: WorkspaceSnapshot, archive: Readable, keepDir: string): Promise<CopyBackResult> {
  return copyBack({
    workspace: workspace.root,
    snapshot,
    archive: gunzipped(archive),
    archiveRoot: IMPLICIT_ARCHIVE_ROOT,
    protectedFiles: workspace.protected.files,
    protectedTrees: workspace.protected.trees,
    keepDir,
    owner: workspace.owner,
    limits: workspace.limits,
    normalizedMode: uploadedMode,
  });
}

/**
 * The archive inflated; a failure of the download or of the inflating fails the inflated stream. Nothing flows until
 * the consumer reads: an error of a short or damaged download must reach the consumer's listeners, not come before
 * them (copy-back prepares its staging directory before it reads).
 */
function gunzipped(archive: Readable): Readable {
  return Readable.from(
    (async function* () {
      yield* pipe(archive, createGunzip(), () => {});
    })(),
    { objectMode: false },
  );
}
