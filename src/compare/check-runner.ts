// EFFECTS: runs the user's `--check` command against one run's final workspace, in a fresh container as locked
// down as the agent's and with no network at all. The workspace is the agent's work, so the check is too: it runs
// on a throwaway copy (the recorded final state stays as the agent left it), and its output is kept only as a
// bounded tail. The container and the copy are removed whatever happens.
import { randomBytes } from "node:crypto";
import { lchown, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type Docker from "dockerode";
import { PerstackError, SandboxError } from "../errors.js";
import { DEFAULT_LIMITS, type ResourceLimits } from "../plan/sandbox-plan.js";
import { MANAGED_LABEL, ownerLabels } from "../sandbox/labels.js";
import { ignoreMissing } from "../sandbox/ignore-missing.js";
import { bindMount } from "../sandbox/mounts.js";
import { agentHardening } from "../sandbox/run-sandbox.js";
import { MAX_OUTPUT_TAIL, type CheckResult } from "./comparison.js";
import { DEFAULT_WORKSPACE_LIMITS, type WorkspaceLimits } from "../workspace/workspace-limits.js";
import { copyWorkspace } from "./workspace-copy.js";

export interface CheckArgs {
  /** The user's command, run as `sh -c <command>` in /workspace. */
  command: string;
  /** The run's final workspace; only read. */
  workspaceDir: string;
  /** An image with a shell and whatever the check needs (the project's base node image). */
  image: string;
  /** Who the check runs as (never root); its copy of the workspace is handed to this user. */
  user: { uid: number; gid: number };
  timeoutMs: number;
  /** Identify the comparison and run (perstack.* labels), so leftovers can be found. */
  labels: Record<string, string>;
  /** Default: the agent's DEFAULT_LIMITS. */
  limits?: Partial<Pick<ResourceLimits, "memoryBytes" | "nanoCpus" | "pidsLimit">>;
  /** Bounds on the throwaway copy (the agent may have left a 100 GB sparse file); default DEFAULT_WORKSPACE_LIMITS. */
  copyLimits?: Partial<WorkspaceLimits>;
  /** Where the throwaway copy goes; default the system's temporary directory. */
  tempDir?: string;
  /** Stops the check and removes everything (the user pressed Ctrl-C). */
  signal?: AbortSignal;
}

const CHECK_HOME = "/home/check";
const CHECK_ROLE = "check";
/** After the container exits, how long its output stream may trail. */
const STREAM_GRACE_MS = 2_000;

export async function runCheck(docker: Docker, args: CheckArgs): Promise<CheckResult> {
  if (args.user.uid === 0) throw new SandboxError(`the check ${quoteCommand(args.command)} must not run as root; give a non-zero uid`);
  throwIfAborted(args);
  const scratch = await mkdtemp(join(args.tempDir ?? tmpdir(), "perstack-check-"));
  let container: Docker.Container | undefined;
  try {
    const workspace = join(scratch, "workspace");
    await copyWorkspace(args.workspaceDir, workspace, { exclude: [], limits: args.copyLimits ?? DEFAULT_WORKSPACE_LIMITS });
    // A root host makes a root-owned copy, which the check's user could not write (build outputs, caches).
    if (process.getuid?.() === 0) await chownTree(workspace, args.user.uid, args.user.gid);
    throwIfAborted(args);

    const limits = { ...DEFAULT_LIMITS, ...args.limits };
    container = await docker.createContainer({
      name: `perstack-check-${randomBytes(6).toString("hex")}`,
      Image: args.image,
      Cmd: ["sh", "-c", args.command],
      Env: [`HOME=${CHECK_HOME}`],
      User: `${args.user.uid}:${args.user.gid}`,
      WorkingDir: "/workspace",
      Labels: { [MANAGED_LABEL]: "true", ...args.labels, ...ownerLabels(), "perstack.role": CHECK_ROLE },
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: false,
      Tty: false,
      HostConfig: {
        NetworkMode: "none",
        Mounts: [bindMount(workspace, "/workspace", false)],
        Tmpfs: {
          "/tmp": "rw,exec,nosuid,nodev,size=1g,mode=1777",
          [CHECK_HOME]: `rw,exec,nosuid,nodev,size=1g,mode=0700,uid=${args.user.uid},gid=${args.user.gid}`,
        },
        ...agentHardening(limits),
      },
    });
    return await attachAndWait(docker, container, args);
  } catch (error) {
    throw asCheckError(error, args);
  } finally {
    if (container) await container.remove({ force: true, v: true }).catch(ignoreMissing).catch(() => {});
    // A copy that cannot be removed must not hide the check's result or error; it is in the temporary directory.
    await rm(scratch, { recursive: true, force: true, maxRetries: 2 }).catch(() => {});
  }
}

async function attachAndWait(docker: Docker, container: Docker.Container, args: CheckArgs): Promise<CheckResult> {
  const tail = new OutputTail(MAX_OUTPUT_TAIL);
  const stream = await container.attach({ stream: true, stdout: true, stderr: true });
  const streamEnded = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
  // stdout and stderr go into one tail in arrival order, as a terminal would show them.
  const sink = new Writable({
    write: (chunk: Buffer, _encoding, callback) => {
      tail.push(chunk);
      callback();
    },
  });
  docker.modem.demuxStream(stream, sink, sink);

  let timedOut = false;
  let interrupted = false;
  const kill = (): void => void container.kill({ signal: "SIGKILL" }).catch(() => {});
  const onAbort = (): void => {
    interrupted = true;
    kill();
  };
  args.signal?.addEventListener("abort", onAbort, { once: true });
  let deadline: NodeJS.Timeout | undefined;
  const started = Date.now();
  try {
    throwIfAborted(args);
    await container.start();
    deadline = setTimeout(() => {
      timedOut = true;
      kill();
    }, args.timeoutMs);
    const waited = (await container.wait()) as { StatusCode: number };
    const durationMs = Date.now() - started;
    await Promise.race([streamEnded, delay(STREAM_GRACE_MS)]);
    if (interrupted) throw new SandboxError(`the check ${quoteCommand(args.command)} was interrupted`);
    // A killed check's status is the kill's, not the command's.
    const exitCode = timedOut ? null : waited.StatusCode;
    return { command: args.command, passed: exitCode === 0, exitCode, timedOut, durationMs, outputTail: tail.text() };
  } finally {
    clearTimeout(deadline);
    args.signal?.removeEventListener("abort", onAbort);
  }
}

/** Gives the check's user its copy: lchown never follows the symlinks the agent left, and only real directories are entered. */
async function chownTree(root: string, uid: number, gid: number): Promise<void> {
  await lchown(root, uid, gid);
  const dirs = [root];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      await lchown(path, uid, gid);
      if (entry.isDirectory()) dirs.push(path);
    }
  }
}

/**
 * Keeps the last bytes of the output, never the whole of it: a check may print gigabytes. Bytes, not text, so a
 * character split across chunks decodes whole.
 */
export class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private clipped = false;
  private readonly keepBytes: number;

  constructor(private readonly maxChars: number) {
    // Four bytes are the most one character takes in UTF-8.
    this.keepBytes = maxChars * 4;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes > this.keepBytes * 2) {
      const all = Buffer.concat(this.chunks);
      const kept = all.subarray(all.length - this.keepBytes);
      this.chunks = [Buffer.from(kept)];
      this.bytes = kept.length;
      this.clipped = true;
    }
  }

  /** The last maxChars characters; when earlier output was dropped, starting at a line's beginning if one is near. */
  text(): string {
    let text = Buffer.concat(this.chunks).toString("utf8");
    if (text.length > this.maxChars) {
      text = text.slice(text.length - this.maxChars);
      this.clipped = true;
    }
    if (!this.clipped) return text;
    // The first character may be half of a surrogate pair, or the replacement for a cut multi-byte sequence.
    text = text.replace(/^[\uDC00-\uDFFF\uFFFD]/, "");
    const newline = text.indexOf("\n");
    return newline >= 0 && newline < text.length / 2 ? text.slice(newline + 1) : text;
  }
}

function asCheckError(error: unknown, args: CheckArgs): Error {
  const what = `the check ${quoteCommand(args.command)}`;
  if (error instanceof PerstackError) {
    return error.message.startsWith(what) ? error : new SandboxError(`${what} could not run: ${error.message}`);
  }
  const e = error as { statusCode?: number; code?: string };
  // The engine's own wording is not for the user: it names internals and changes between versions.
  if (e.statusCode === 404) return new SandboxError(`${what} could not run: its image ${args.image} is not in the Docker engine; build or pull it first`);
  if (typeof e.statusCode === "number") return new SandboxError(`${what} could not run: the Docker engine refused it (HTTP ${e.statusCode})`);
  if (e.code === "ECONNREFUSED" || e.code === "ENOENT" || e.code === "EACCES" || e.code === "ECONNRESET") {
    return new SandboxError(`${what} could not run: the Docker engine is not reachable (${e.code}); start Docker or set DOCKER_HOST`);
  }
  return new SandboxError(`${what} could not run${e.code ? ` (${e.code})` : ""}`);
}

/** The command for a one-line message: its first line, quoted, clipped. */
function quoteCommand(command: string): string {
  const firstLine = command.split("\n", 1)[0] ?? "";
  const clipped = firstLine.length > 80 ? `${firstLine.slice(0, 77)}...` : firstLine;
  return JSON.stringify(command.includes("\n") && !clipped.endsWith("...") ? `${clipped}...` : clipped);
}

function throwIfAborted(args: CheckArgs): void {
  if (args.signal?.aborted) throw new SandboxError(`the check ${quoteCommand(args.command)} was interrupted`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
