// EFFECTS: carries out a SandboxPlan with the Engine API. Networks, proxy, workspace volume, agent; streams the
// agent's output to the caller; removes everything it created after success, failure or abort.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import type Docker from "dockerode";
import { SandboxError } from "../errors.js";
import { GATEWAY_CONFIG_DIR } from "../plan/gateway-plan.js";
import { AGENT_HOME_FILES, PROXY_TMPFS, NO_IPV6_SYSCTLS, type ResourceLimits, type SandboxPlan } from "../plan/sandbox-plan.js";
import type { HomeFile } from "../runtimes/types.js";
import { LineSplitter } from "../stream/line-splitter.js";
import { ensureImage, type BuildProgress } from "./image-builder.js";
import { ownerLabels } from "./labels.js";
import { bindMount, volumeMount } from "./mounts.js";
import { SandboxResources } from "./sandbox-resources.js";
import { createWorkspaceVolume } from "./workspace-volume.js";

/** What the caller does with the workspace around the agent (job/workspace-session.ts). */
export interface WorkspaceHooks {
  /** Extra read-write bind mounts for the agent (bind mode: shadows of the policy files). */
  mounts: Array<{ source: string; target: string }>;
  /** Copy mode: fills the volume through the created, not yet started, agent container. */
  fill?(agent: Docker.Container): Promise<void>;
  /**
   * The agent has exited (or was stopped) and its container still exists: copy its work back. Not called when the
   * run was cut short before the agent started, or by a second interrupt (`hurry`).
   */
  collect?(agent: Docker.Container): Promise<void>;
}

export interface SandboxIO {
  /** Values for the plan's env entries (host-sourced ones resolved by the caller); never logged. */
  env: Record<string, string>;
  /** Directory for files the containers mount (squid.conf). */
  filesDir: string;
  buildProgress(progress: BuildProgress): void;
  containerStatus(service: "proxy" | "agent" | "gateway", status: string): void;
  agentStdout: Writable;
  agentStderr: Writable;
  proxyLogLine(line: string): void;
  /** The provider gateway's secrets (real credentials, the run's token); never logged. */
  gatewayEnv?: Record<string, string>;
  /** A line of the provider gateway's stdout (metered calls, refusals, budgets). */
  gatewayLine?(line: string): void;
  /** The user interrupts (first Ctrl-C). */
  signal: AbortSignal;
  /** The user insists (second Ctrl-C): skip copying the workspace back and remove everything at once. */
  hurry?: AbortSignal;
  /** The collector stops the run (output limit); the caller knows why. */
  stop?: AbortSignal;
  workspace?: WorkspaceHooks;
  /** Shared with the caller so it can name what is left if removal cannot finish. */
  resources?: SandboxResources;
}

export interface SandboxResult {
  exitCode: number;
  imagesBuilt: string[];
  aborted: boolean;
  /** The agent was stopped at the plan's maxDurationMs. */
  timedOut: boolean;
}

/** How the proxy container is locked down, whatever network it sits on. */
export const PROXY_HARDENING = {
  ReadonlyRootfs: true,
  Tmpfs: PROXY_TMPFS,
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  Memory: 256 * 1024 ** 2,
  PidsLimit: 128,
};

/**
 * How a container that runs the agent's work is locked down, whatever its network and mounts: the agent itself, and
 * compare's `--check` on an agent's workspace.
 */
export function agentHardening(limits: Pick<ResourceLimits, "memoryBytes" | "nanoCpus" | "pidsLimit">) {
  return {
    ReadonlyRootfs: true,
    CapDrop: ["ALL"],
    SecurityOpt: ["no-new-privileges"],
    Memory: limits.memoryBytes,
    MemorySwap: limits.memoryBytes,
    NanoCpus: limits.nanoCpus,
    PidsLimit: limits.pidsLimit,
    // An init reaps what the work leaves behind and passes a kill on at once.
    Init: true,
  };
}

const PROXY_READY = /Accepting HTTP Socket connections/;
const SIDECAR_START_TIMEOUT_MS = 30_000;

export async function runSandbox(docker: Docker, plan: SandboxPlan, io: SandboxIO): Promise<SandboxResult> {
  const imagesBuilt: string[] = [];
  const resources = io.resources ?? new SandboxResources(docker);
  const labels = { ...plan.labels, ...ownerLabels() };
  let aborted = false;
  try {
    for (const image of plan.images) {
      throwIfAborted(io.signal);
      const result = await ensureImage(docker, image, io.buildProgress, io.signal);
      if (result.built) imagesBuilt.push(result.ref);
    }

    throwIfAborted(io.signal);
    for (const network of plan.networks) {
      const handle = await docker.createNetwork({
        Name: network.name,
        Driver: "bridge",
        Internal: network.internal,
        EnableIPv6: network.enableIPv6,
        Options: network.options,
        CheckDuplicate: true,
        Labels: { ...labels, "perstack.role": `network-${network.role}` },
      });
      resources.network(network.name, handle);
    }

    // The gateway and the proxy start side by side: squid resolves the gateway's name only when a request comes.
    const [proxy] = await Promise.all([
      startProxy(docker, plan, io, labels, resources),
      plan.gateway ? startGateway(docker, plan, io, labels, resources) : undefined,
    ]);
    const proxyIp = await addressOn(proxy, plan.networks.find((n) => n.role === "internal")!.name);

    throwIfAborted(io.signal);
    const workspace = plan.agent.workspace;
    if (workspace.mode === "copy") await createWorkspaceVolume(docker, plan, workspace.volumeName, labels, resources);
    const homeDir = await writeHomeFiles(io.filesDir, plan.agent.homeFiles);
    const agent: Docker.Container = await docker.createContainer({
      name: plan.agent.containerName,
      Image: plan.agent.image,
      Cmd: plan.agent.command,
      Env: plan.agent.env.map((entry) => `${entry.name}=${entry.source === "fixed" ? entry.value : (io.env[entry.name] ?? "")}`),
      User: plan.agent.user,
      WorkingDir: plan.agent.workdir,
      Labels: { ...labels, "perstack.role": "agent" },
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: false,
      Tty: false,
      HostConfig: {
        NetworkMode: plan.networks.find((n) => n.role === "internal")!.name,
        ExtraHosts: [`${plan.proxy.alias}:${proxyIp}`],
        Dns: plan.agent.dns,
        Sysctls: plan.agent.sysctls,
        // The Mounts API, not Binds strings: host paths may contain ':'. Docker orders them parent first.
        Mounts: [
          ...(workspace.mode === "copy" ? [volumeMount(workspace.volumeName, "/workspace")] : []),
          ...plan.agent.mounts.map((m) => bindMount(m.source, m.target, m.readOnly)),
          ...(io.workspace?.mounts ?? []).map((m) => bindMount(m.source, m.target, false)),
          bindMount(plan.agent.resolvConf, "/etc/resolv.conf", true),
          ...(homeDir ? [bindMount(homeDir, AGENT_HOME_FILES, true)] : []),
        ],
        Tmpfs: plan.agent.tmpfs,
        ...agentHardening(plan.agent.limits),
      },
    });
    resources.container(plan.agent.containerName, agent as Docker.Container);
    if (io.workspace?.fill) await io.workspace.fill(agent);

    const stream = await agent.attach({ stream: true, stdout: true, stderr: true });
    const streamEnded = new Promise<void>((resolve) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", () => resolve());
    });
    docker.modem.demuxStream(stream, io.agentStdout, io.agentStderr);

    const kill = () => agent.kill({ signal: "SIGKILL" }).catch(() => {});
    const onAbort = () => {
      aborted = true;
      void kill();
    };
    const onStop = () => void kill();
    io.signal.addEventListener("abort", onAbort, { once: true });
    io.stop?.addEventListener("abort", onStop, { once: true });
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      void kill();
    }, plan.agent.limits.maxDurationMs);
    try {
      // An interrupt that came while the container was being created: the listener above never saw it.
      throwIfAborted(io.signal);
      await agent.start();
      io.containerStatus("agent", "running");
      const waited = (await agent.wait()) as { StatusCode: number };
      // The attach stream can trail the exit by a moment; wait for it so no output is lost.
      await Promise.race([streamEnded, delay(5_000)]);
      // The proxy's last access-log lines are relayed by tail; give them a moment before it is removed.
      await delay(300);
      io.containerStatus("agent", `exited with code ${waited.StatusCode}`);
      if (io.workspace?.collect && !io.hurry?.aborted) await io.workspace.collect(agent);
      return { exitCode: waited.StatusCode, imagesBuilt, aborted: aborted || io.signal.aborted, timedOut };
    } finally {
      clearTimeout(deadline);
      io.signal.removeEventListener("abort", onAbort);
      io.stop?.removeEventListener("abort", onStop);
    }
  } catch (error) {
    if (io.signal.aborted) return { exitCode: 130, imagesBuilt, aborted: true, timedOut: false };
    throw error;
  } finally {
    await resources.removeAll();
  }
}

async function startProxy(docker: Docker, plan: SandboxPlan, io: SandboxIO, labels: Record<string, string>, resources: SandboxResources): Promise<Docker.Container> {
  await mkdir(io.filesDir, { recursive: true });
  const squidConf = join(io.filesDir, "squid.conf");
  await writeFile(squidConf, plan.proxy.squidConf, { mode: 0o644 });
  const egress = plan.networks.find((n) => n.role === "egress")!.name;
  const internal = plan.networks.find((n) => n.role === "internal")!.name;
  const proxy = await docker.createContainer({
    name: plan.proxy.containerName,
    Image: plan.proxy.image,
    Labels: { ...labels, "perstack.role": "proxy" },
    HostConfig: {
      NetworkMode: egress,
      ExtraHosts: plan.proxy.extraHosts,
      Mounts: [bindMount(squidConf, "/etc/squid/squid.conf", true)],
      Sysctls: NO_IPV6_SYSCTLS,
      ...PROXY_HARDENING,
    },
  });
  resources.container(plan.proxy.containerName, proxy);
  await docker.getNetwork(internal).connect({ Container: proxy.id, EndpointConfig: { Aliases: [plan.proxy.alias] } });

  const cacheLog: string[] = [];
  await startSidecar(docker, proxy, io, "proxy", "the proxy", cacheLog, ({ stdout, stderr }, ready) => {
    forEachLine(stdout, io.proxyLogLine);
    forEachLine(stderr, (line) => {
      remember(cacheLog, line);
      if (PROXY_READY.test(line)) ready();
    });
  });
  return proxy;
}

/** How the gateway container is locked down: it holds the real credentials, so it gets no more than it needs. */
const GATEWAY_HARDENING = {
  ReadonlyRootfs: true,
  Tmpfs: { "/tmp": "rw,nosuid,nodev,noexec,size=16m" },
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  Memory: 256 * 1024 ** 2,
  PidsLimit: 128,
};

/**
 * The provider gateway, on the egress network only: the agent reaches it solely through squid (as the one
 * configured upstream), and it reaches the provider directly. Its config is a read-only bind like squid.conf; its
 * secrets go to the Engine API at creation.
 */
async function startGateway(docker: Docker, plan: SandboxPlan, io: SandboxIO, labels: Record<string, string>, resources: SandboxResources): Promise<Docker.Container> {
  const gateway = plan.gateway!;
  const dir = join(io.filesDir, "gateway");
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFile(join(dir, "gateway.json"), `${JSON.stringify(gateway.config, null, 2)}\n`, { mode: 0o644 });
  if (gateway.pricingTable !== undefined) await writeFile(join(dir, "prices.json"), gateway.pricingTable, { mode: 0o644 });
  const egress = plan.networks.find((n) => n.role === "egress")!.name;
  const container = await docker.createContainer({
    name: gateway.containerName,
    Image: gateway.image,
    Labels: { ...labels, "perstack.role": "gateway" },
    Env: [
      `PERSTACK_GATEWAY_CONFIG=${GATEWAY_CONFIG_DIR}/gateway.json`,
      ...Object.entries(io.gatewayEnv ?? {}).map(([name, value]) => `${name}=${value}`),
    ],
    HostConfig: {
      NetworkMode: egress,
      ExtraHosts: gateway.extraHosts,
      Mounts: [bindMount(dir, GATEWAY_CONFIG_DIR, true)],
      Sysctls: NO_IPV6_SYSCTLS,
      ...GATEWAY_HARDENING,
    },
    NetworkingConfig: { EndpointsConfig: { [egress]: { Aliases: [gateway.alias] } } },
  });
  resources.container(gateway.containerName, container);
  const errors: string[] = [];
  await startSidecar(docker, container, io, "gateway", "the provider gateway", errors, ({ stdout, stderr }, ready) => {
    forEachLine(stderr, (line) => remember(errors, line));
    forEachLine(stdout, (line) => (line.includes('"gatewayReady"') ? ready() : io.gatewayLine?.(line)));
  });
  return container;
}

/**
 * Starts a sidecar (the proxy, the gateway) and waits until `watch` sees it say it is ready. A timeout, an interrupt
 * or the sidecar exiting first is an error that names it and quotes its last lines (`recent`).
 */
async function startSidecar(
  docker: Docker,
  container: Docker.Container,
  io: SandboxIO,
  service: "proxy" | "gateway",
  what: string,
  recent: string[],
  watch: (streams: { stdout: PassThrough; stderr: PassThrough }, ready: () => void) => void,
): Promise<void> {
  const logs = await container.attach({ stream: true, stdout: true, stderr: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(logs, stdout, stderr);
  const last = () => recent.slice(-5).join(" | ");
  let onAbort: () => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new SandboxError(`${what} did not start within ${SIDECAR_START_TIMEOUT_MS / 1000}s: ${last()}`)), SIDECAR_START_TIMEOUT_MS);
    onAbort = () => {
      clearTimeout(timer);
      reject(new SandboxError("interrupted"));
    };
    io.signal.addEventListener("abort", onAbort, { once: true });
    watch({ stdout, stderr }, () => {
      clearTimeout(timer);
      resolve();
    });
    logs.on("end", () => {
      clearTimeout(timer);
      reject(new SandboxError(`${what} exited at start: ${last() || "no output"}`));
    });
  });
  try {
    await container.start();
    io.containerStatus(service, "starting");
    await ready;
  } finally {
    io.signal.removeEventListener("abort", onAbort);
  }
  io.containerStatus(service, "running");
}

/** Keeps the last 50 lines of a sidecar's output for error messages. */
function remember(lines: string[], line: string): void {
  lines.push(line);
  if (lines.length > 50) lines.shift();
}

/** Writes the runtime's HOME files for the agent's entrypoint to copy; undefined when there are none. */
async function writeHomeFiles(filesDir: string, files: HomeFile[]): Promise<string | undefined> {
  if (files.length === 0) return undefined;
  const root = join(filesDir, "home");
  for (const file of files) {
    const path = join(root, file.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.content, { mode: 0o644 });
  }
  return root;
}

async function addressOn(container: Docker.Container, network: string): Promise<string> {
  const info = await container.inspect();
  const address = info.NetworkSettings.Networks[network]?.IPAddress;
  if (!address) throw new SandboxError(`the proxy has no address on ${network}`);
  return address;
}

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const splitter = new LineSplitter(onLine, () => {}, 65_536);
  stream.on("data", (chunk: Buffer) => splitter.push(chunk));
  stream.on("end", () => splitter.end());
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SandboxError("interrupted");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
