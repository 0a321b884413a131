// `perstack run` prints its result and exits without waiting for its sandbox to be removed: a detached process
// (teardown-main.ts) removes it, about half a second of Docker work off the command's wall time. Cleanup stays
// guaranteed: what that process cannot remove carries the labels of an owner that is gone, and the next perstack
// command's leftover sweep removes it (leftovers.ts).
//
// While the teardown process works, a sweep by another perstack command must not take the run for a crashed one (it
// would announce "leftovers of crashed runs"). A marker file per handed-off owner names the live teardown process;
// labels.ts reads it. The marker lives on the host, out of the sandbox's reach, in a directory of this user's only.
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { getCompileCacheDir } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { MAX_WARM_POOL, parseShellSpec, type ShellSpec } from "../plan/warm-shell.js";

/** Warm shells a teardown process makes once the sandbox is gone. */
export interface WarmPoolRefill {
  spec: ShellSpec;
  size: number;
}

/** One thing to remove, in removal order by phase (sandbox-resources.ts). */
export interface TeardownItem {
  kind: "container" | "volume" | "network";
  name: string;
  phase: number;
}

export interface TeardownRequest {
  /** The pid in the items' owner labels (the perstack process that created them). */
  ownerPid: number;
  items: TeardownItem[];
  /** Then keep this many warm shells of this spec ready for the next run, 0 or more (PERSTACK_WARM_POOL, warm-shells.ts). */
  refill?: WarmPoolRefill;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/;
const KINDS: ReadonlySet<string> = new Set(["container", "volume", "network"]);

/**
 * The request as the teardown process reads it from its stdin: only our own process writes there, but a name is
 * still checked to be a Docker object name before it reaches the Engine API. Undefined when it is not a request.
 */
export function parseTeardownRequest(text: string): TeardownRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { ownerPid, items, refill } = value as Record<string, unknown>;
  if (typeof ownerPid !== "number" || !Number.isInteger(ownerPid) || ownerPid <= 0 || !Array.isArray(items)) return undefined;
  const valid = items.filter(
    (item): item is TeardownItem =>
      typeof item === "object" && item !== null && KINDS.has(item.kind) && typeof item.name === "string" && NAME.test(item.name) && Number.isInteger(item.phase),
  );
  const wanted = parseRefill(refill);
  return { ownerPid, items: valid, ...(wanted ? { refill: wanted } : {}) };
}

/** A refill as read from the request; anything but a whole, consistently signed spec and a pool size is none. */
function parseRefill(value: unknown): WarmPoolRefill | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const { spec, size } = value as Record<string, unknown>;
  const parsed = parseShellSpec(spec);
  if (!parsed || typeof size !== "number" || !Number.isInteger(size) || size < 0 || size > MAX_WARM_POOL) return undefined;
  return { spec: parsed, size };
}

const TEARDOWN_MAIN = fileURLToPath(new URL("./teardown-main.js", import.meta.url));

function markerDir(): string {
  return join(tmpdir(), `perstack-${process.getuid?.() ?? "user"}`, "teardown");
}

function markerPath(ownerPid: number): string {
  return join(markerDir(), String(ownerPid));
}

/**
 * Whether the marker directory and its parent are this user's own: the temporary directory is shared, and a directory
 * another user made there could feed us markers. Not ours: no marker is written or believed.
 */
function markerDirIsOurs(): boolean {
  const uid = process.getuid?.();
  if (uid === undefined) return true;
  for (const dir of [dirname(markerDir()), markerDir()]) {
    try {
      const info = lstatSync(dir);
      if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o022) !== 0) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * Starts the detached teardown process and gives it `request` on its stdin. Resolves true once it runs and holds the
 * list; false if it could not be started (the caller removes everything itself then).
 */
export function handOffTeardown(request: TeardownRequest): Promise<boolean> {
  return new Promise((resolve) => {
    let child: ReturnType<typeof spawn>;
    try {
      // With this process's compile cache (entry.ts): every run starts one of these, and its Docker client loads faster.
      const cache = getCompileCacheDir();
      const env = { ...teardownEnv(process.env), ...(cache ? { NODE_COMPILE_CACHE: cache } : {}) };
      child = spawn(process.execPath, [TEARDOWN_MAIN], { detached: true, stdio: ["pipe", "ignore", "ignore"], env });
    } catch {
      resolve(false);
      return;
    }
    child.once("error", () => resolve(false));
    child.once("spawn", () => {
      writeTeardownMarker(request.ownerPid, child.pid!);
      child.unref();
      // Resolved once the list is in the pipe (a few hundred bytes): it waits there for the child, even after we exit.
      child.stdin!.once("error", () => resolve(false));
      child.stdin!.end(`${JSON.stringify(request)}\n`, () => resolve(true));
    });
  });
}

/**
 * After a sandbox this process removed itself (not through a teardown process): a detached teardown process with
 * nothing to remove brings the warm pool to its size, so that no command waits for that. Best effort.
 */
export function handOffRefill(refill: WarmPoolRefill): void {
  void handOffTeardown({ ownerPid: process.pid, items: [], refill });
}

/** Owner `ownerPid`'s sandbox is in the hands of process `pid`. */
export function writeTeardownMarker(ownerPid: number, pid: number): void {
  try {
    mkdirSync(markerDir(), { recursive: true, mode: 0o700 });
    if (markerDirIsOurs()) writeFileSync(markerPath(ownerPid), String(pid), { mode: 0o600 });
  } catch {
    // Without a marker a sweep may remove the run's containers first and call them a crashed run's: no harm done.
  }
}

/**
 * What the teardown process needs of our environment: the way to the engine (DOCKER_HOST and its TLS settings) and the
 * temporary directory its marker is in. No provider key or other secret of the user's reaches it.
 */
export function teardownEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith("DOCKER_") || ["PATH", "HOME", "TMPDIR", "TMP", "TEMP"].includes(name)));
}

/** The live teardown process that owner `ownerPid` handed its sandbox to, if any. */
export function teardownProcessOf(ownerPid: number): number | undefined {
  let pid: number;
  if (!markerDirIsOurs()) return undefined;
  try {
    pid = Number(readFileSync(markerPath(ownerPid), "utf8"));
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The teardown process is done with owner `ownerPid`'s sandbox. */
export function clearTeardownMarker(ownerPid: number): void {
  rmSync(markerPath(ownerPid), { force: true });
}
