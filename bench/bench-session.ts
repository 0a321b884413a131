// What the Docker benchmarks share: workspaces, `perstack run` through the built CLI (dist/src/cli/entry.js, as a
// user runs it), the same engine in a bare `docker run --rm`, and the cleanup of everything they made. Every loop
// that calls these is bounded: each process has a timeout, after which it is interrupted (the CLI then removes
// its sandbox itself) and, if it does not go, killed. Whatever the processes leave, cleanup() removes: containers
// labelled with the session, and the containers, networks and volumes labelled with the pid of a CLI it started.
//
// Runs under Node's type stripping (see bench.mjs): erasable TypeScript only.
import { spawn } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import { SHELL_LABEL } from "../dist/src/plan/warm-shell.js";
import { teardownProcessOf } from "../dist/src/sandbox/teardown-handoff.js";
import { removeShell } from "../dist/src/sandbox/warm-shells.js";
import { BENCH_LABEL, benchLabels, benchOwnerGone } from "./bench-labels.ts";

const CLI = fileURLToPath(new URL("../dist/src/cli/entry.js", import.meta.url));
/** After an interrupt, how long a process gets to clean up before it is killed. */
const GRACE_MS = 30_000;
const OWNER_PID_LABEL = "perstack.owner-pid";
const OWNER_HOST_LABEL = "perstack.owner-host";
/** The engine input file among the agent's HOME files (src/engine/engine-input.ts ENGINE_INPUT_HOME_PATH). */
const ENGINE_INPUT = ".perstack/engine-input.json";
/** Where the agent image's entrypoint copies HOME files from (src/plan/sandbox-plan.ts AGENT_HOME_FILES). */
const AGENT_HOME_FILES = "/etc/perstack/home";
/** The per-run proxy's variables: a bare run has no proxy. */
const PROXY_VARIABLES = new Set(["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"]);
const FAKE_KEY = "bench-key-not-a-secret";

/** How long a run's sandbox may take to be gone after the run's process exits. */
const TEARDOWN_BOUND_MS = 30_000;

export interface ProcessRun {
  exitCode: number | null;
  signal: string | null;
  ms: number;
  /** Date.now() when the process was spawned: event timestamps (epoch ms) are set against it. */
  startedAt: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  pid: number | undefined;
}

export interface Event {
  type: string;
  jobId?: string;
  runId?: string;
  message?: string;
  [key: string]: unknown;
}

export interface PerstackRun extends ProcessRun {
  events: Event[];
  jobId: string | undefined;
  /** Images the run reported building (its dockerBuildProgress "built <ref>" events). */
  imagesBuilt: string[];
  completed: boolean;
  /**
   * From the process's exit until nothing of its sandbox is left on the engine (its teardown process finishes after
   * it exits), when waited for (completedRun); undefined otherwise, or when it took over TEARDOWN_BOUND_MS.
   */
  teardownMs: number | undefined;
}

/** The parts of a `perstack run --dry-run` plan a bare run needs. */
interface AgentPlan {
  image: string;
  command: string[];
  user: string;
  workdir: string;
  env: Array<{ name: string; source: string; value?: string }>;
  homeFiles: Array<{ path: string; content: string }>;
}

export class BenchSession {
  readonly id = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  private readonly startedAtS = Math.floor(Date.now() / 1000);
  private readonly cliPids = new Set<number>();
  private readonly dirs: string[] = [];
  private readonly running = new Set<ReturnType<typeof spawn>>();
  private bareCount = 0;
  readonly docker: Docker;
  private readonly say: (message: string) => void;

  constructor(docker: Docker, say: (message: string) => void) {
    this.docker = docker;
    this.say = say;
  }

  /** A fresh workspace holding perstack.toml, writable by the agent's default uid when the bench runs as root. */
  workspace(toml: string): string {
    const dir = mkdtempSync(join(tmpdir(), "perstack-bench-ws-"));
    this.dirs.push(dir);
    writeFileSync(join(dir, "perstack.toml"), toml);
    if (process.getuid?.() === 0) chownSync(dir, 1000, 1000);
    return dir;
  }

  /** `perstack run <expert> <query> --json [flags]` in `cwd` (with `env` added to its environment), timed from spawn to exit. */
  async perstackRun(cwd: string, expert: string, query: string, timeoutMs: number, flags: string[] = [], env: Record<string, string> = {}): Promise<PerstackRun> {
    const run = await this.spawnTimed(process.execPath, [CLI, "run", expert, query, "--json", ...flags], { cwd, env: { ...cliEnv(), ...env }, timeoutMs, cli: true });
    const events = jsonEvents(run.stdout);
    const imagesBuilt = [
      ...new Set(events.flatMap((e) => (e.type === "dockerBuildProgress" && typeof e.message === "string" && /^built \S+$/.test(e.message) ? [e.message.slice(6)] : []))),
    ];
    const jobId = events.find((e) => typeof e.jobId === "string")?.jobId;
    return { ...run, events, jobId, imagesBuilt, completed: run.exitCode === 0 && events.some((e) => e.type === "completeRun"), teardownMs: undefined };
  }

  /**
   * Waits (bounded, polling the engine) until no container or network of job `jobId` is left: the time it took, or
   * undefined. The next measurement must not share the machine with a run's teardown, which ends after its process.
   * Then, also bounded, until the teardown process of the CLI that was `cliPid` has exited: with PERSTACK_WARM_POOL it
   * makes the next warm shell after the removal, which must not share the machine with the next measurement either.
   */
  async sandboxGone(jobId: string | undefined, cliPid?: number): Promise<number | undefined> {
    if (jobId === undefined) return undefined;
    const start = performance.now();
    const filters = { label: [`perstack.job=${jobId}`] };
    let gone: number | undefined;
    while (performance.now() - start < TEARDOWN_BOUND_MS) {
      const [containers, networks] = await Promise.all([this.docker.listContainers({ all: true, filters }), this.docker.listNetworks({ filters })]);
      if (containers.length === 0 && networks.length === 0) {
        gone = performance.now() - start;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    while (cliPid !== undefined && teardownProcessOf(cliPid) !== undefined && performance.now() - start < TEARDOWN_BOUND_MS) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return gone;
  }

  /** Like perstackRun, but a run that did not complete is an error that says why; returns once its sandbox is gone. */
  async completedRun(cwd: string, expert: string, query: string, timeoutMs: number, flags: string[] = [], env: Record<string, string> = {}): Promise<PerstackRun> {
    const run = await this.perstackRun(cwd, expert, query, timeoutMs, flags, env);
    if (!run.completed) throw new Error(`perstack run ${expert} did not complete: ${describeFailure(run)}`);
    return { ...run, teardownMs: await this.sandboxGone(run.jobId, run.pid) };
  }

  /** The plan a run in `cwd` would carry out (`perstack run --dry-run`), for the bare run of the same agent. */
  async agentPlan(cwd: string, expert: string, query: string): Promise<AgentPlan> {
    const run = await this.spawnTimed(process.execPath, [CLI, "run", expert, query, "--dry-run"], { cwd, env: cliEnv(), timeoutMs: 60_000, cli: true });
    if (run.exitCode !== 0) throw new Error(`perstack run --dry-run failed: ${describeFailure(run)}`);
    return (JSON.parse(run.stdout) as { agent: AgentPlan }).agent;
  }

  /**
   * The same engine, image and input as the sandboxed run, in a bare `docker run --rm`: no proxy, no gateway, no
   * per-run networks (the default bridge), no hardening, the model reached directly at `modelUrl`. The HOME files
   * are the plan's, with the engine input's provider base URL pointed at the model instead of the gateway.
   */
  async bareRun(plan: AgentPlan, modelUrl: string, timeoutMs: number): Promise<ProcessRun & { completed: boolean }> {
    if (!plan.homeFiles.some((f) => f.path === ENGINE_INPUT)) throw new Error("the bare run needs the built-in perstack runtime's engine input");
    const name = `perstack-bench-${this.id}-bare-${++this.bareCount}`;
    const home = join(mkdtempSync(join(tmpdir(), "perstack-bench-home-")), "home");
    this.dirs.push(dirname(home));
    for (const file of plan.homeFiles) {
      const path = join(home, file.path);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, file.path === ENGINE_INPUT ? directToModel(file.content, modelUrl) : file.content, { mode: 0o644 });
    }
    const env = plan.env.filter((entry) => !PROXY_VARIABLES.has(entry.name)).map((entry) => `${entry.name}=${entry.source === "fixed" ? (entry.value ?? "") : FAKE_KEY}`);
    const args = [
      "run",
      "--rm",
      "--name",
      name,
      ...Object.entries(benchLabels(this.id)).flatMap(([key, value]) => ["--label", `${key}=${value}`]),
      "--add-host",
      "host.docker.internal:host-gateway",
      "--user",
      plan.user,
      "--workdir",
      plan.workdir,
      "--tmpfs",
      "/home/agent:rw,exec,nosuid,nodev,size=1g,mode=0700,uid=1000,gid=1000",
      "--tmpfs",
      `${plan.workdir}:rw,exec,size=1g,uid=1000,gid=1000`,
      "--mount",
      `type=bind,source=${home},target=${AGENT_HOME_FILES},readonly`,
      ...env.flatMap((entry) => ["--env", entry]),
      plan.image,
      ...plan.command,
    ];
    const run = await this.spawnTimed("docker", args, { cwd: tmpdir(), env: process.env, timeoutMs, cli: false });
    if (run.timedOut) await this.docker.getContainer(name).remove({ force: true }).catch(() => undefined);
    return { ...run, completed: run.exitCode === 0 && jsonEvents(run.stdout).some((e) => e.type === "completeRun") };
  }

  private spawnTimed(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number; cli: boolean }): Promise<ProcessRun> {
    return new Promise((resolve, reject) => {
      const start = performance.now();
      const startedAt = Date.now();
      const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
      if (options.cli && child.pid !== undefined) this.cliPids.add(child.pid);
      this.running.add(child);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
      let timedOut = false;
      let kill: NodeJS.Timeout | undefined;
      const deadline = setTimeout(() => {
        timedOut = true;
        child.kill("SIGINT");
        kill = setTimeout(() => child.kill("SIGKILL"), GRACE_MS);
      }, options.timeoutMs);
      child.on("error", (error) => {
        clearTimeout(deadline);
        clearTimeout(kill);
        this.running.delete(child);
        reject(new Error(`could not start ${command}: ${error.message}`));
      });
      child.on("close", (exitCode, signal) => {
        const ms = performance.now() - start;
        clearTimeout(deadline);
        clearTimeout(kill);
        this.running.delete(child);
        resolve({ exitCode, signal, ms, startedAt, stdout: Buffer.concat(stdout).toString("utf8"), stderr: Buffer.concat(stderr).toString("utf8"), timedOut, pid: child.pid });
      });
    });
  }

  /** Interrupts every process still running (a signal to the benchmark): the CLIs clean up their sandboxes. */
  interrupt(): void {
    for (const child of this.running) child.kill("SIGINT");
  }

  /**
   * Removes what this session made: its containers, the sandboxes its CLIs left, its temporary directories; and
   * the containers of earlier benchmarks that were killed before they could clean up.
   */
  async cleanup(): Promise<string[]> {
    const removed: string[] = [];
    const host = hostname();
    const ours = (labels: Record<string, string> | undefined) =>
      labels?.[BENCH_LABEL] === this.id ||
      benchOwnerGone(labels) ||
      (labels?.[OWNER_HOST_LABEL] === host && this.cliPids.has(Number(labels?.[OWNER_PID_LABEL])));
    const tryRemove = async (what: string, remove: () => Promise<unknown>) => {
      try {
        await remove();
        removed.push(what);
      } catch (error) {
        const status = (error as { statusCode?: number }).statusCode;
        if (status !== 404) this.say(`could not remove ${what}: ${(error as Error).message}`);
      }
    };
    const containers = await this.docker.listContainers({ all: true });
    for (const info of containers.filter((c) => ours(c.Labels))) {
      await tryRemove(`container ${info.Names[0]?.replace(/^\//, "") ?? info.Id}`, () => this.docker.getContainer(info.Id).remove({ force: true, v: true }));
    }
    const volumes = (await this.docker.listVolumes()).Volumes ?? [];
    for (const info of volumes.filter((v) => ours(v.Labels ?? undefined))) {
      await tryRemove(`volume ${info.Name}`, () => this.docker.getVolume(info.Name).remove());
    }
    const networks = await this.docker.listNetworks();
    for (const info of networks.filter((n) => ours(n.Labels))) {
      await tryRemove(`network ${info.Name}`, () => this.docker.getNetwork(info.Id).remove());
    }
    // The warm shells its runs' teardown processes made (PERSTACK_WARM_POOL): any made since the session began.
    const shells = new Set(
      (await this.docker.listContainers({ all: true, filters: { label: [SHELL_LABEL] } })).filter((c) => c.Created >= this.startedAtS).map((c) => c.Labels[SHELL_LABEL]!),
    );
    for (const id of shells) await tryRemove(`warm shell ${id}`, () => removeShell(this.docker, id));
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    return removed;
  }
}

/** The benchmark's environment for the CLI: no real provider keys, the fake's key instead. */
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/API_KEY$/.test(name)) env[name] = value;
  return { ...env, ANTHROPIC_API_KEY: FAKE_KEY };
}

function directToModel(engineInput: string, modelUrl: string): string {
  const input = JSON.parse(engineInput) as { provider: { providerName: string; setting?: Record<string, unknown> } };
  input.provider = { ...input.provider, setting: { ...input.provider.setting, baseUrl: modelUrl } };
  return `${JSON.stringify(input, null, 2)}\n`;
}

export function jsonEvents(stdout: string): Event[] {
  const events: Event[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      events.push(JSON.parse(line) as Event);
    } catch {
      // not an event line
    }
  }
  return events;
}

export function describeFailure(run: ProcessRun): string {
  const how = run.timedOut ? `timed out after ${Math.round(run.ms / 1000)} s` : run.signal ? `killed by ${run.signal}` : `exit code ${run.exitCode}`;
  const tail = run.stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 400);
  return `${how}${tail ? `: ${tail}` : ""}`;
}
