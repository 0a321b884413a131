// EFFECTS: carries out a SandboxPlan with the Engine API. Networks, proxy, agent; streams the agent's output to
// the caller; removes everything it created after success, failure or abort.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import type Docker from "dockerode";
import { SandboxError } from "../errors.js";
import { AGENT_HOME_FILES, PROXY_TMPFS, type SandboxPlan } from "../plan/sandbox-plan.js";
import type { HomeFile } from "../runtimes/types.js";
import { LineSplitter } from "../collector/line-splitter.js";
import { ensureImage, type BuildProgress } from "./image-builder.js";
import { ownerLabels } from "./labels.js";
import { ignoreMissing } from "./leftovers.js";

export interface SandboxIO {
  /** Values for the plan's env entries (host-sourced ones resolved by the caller); never logged. */
  env: Record<string, string>;
  /** Directory for files the containers mount (squid.conf). */
  filesDir: string;
  buildProgress(progress: BuildProgress): void;
  containerStatus(service: "proxy" | "agent", status: string): void;
  agentStdout: Writable;
  agentStderr: Writable;
  proxyLogLine(line: string): void;
  signal: AbortSignal;
}

export interface SandboxResult {
  exitCode: number;
  imagesBuilt: string[];
  aborted: boolean;
  /** The agent was stopped at the plan's maxDurationMs. */
  timedOut: boolean;
}

const PROXY_READY = /Accepting HTTP Socket connections/;
const PROXY_START_TIMEOUT_MS = 30_000;

export async function runSandbox(docker: Docker, plan: SandboxPlan, io: SandboxIO): Promise<SandboxResult> {
  const imagesBuilt: string[] = [];
  for (const image of plan.images) {
    throwIfAborted(io.signal);
    const result = await ensureImage(docker, image, io.buildProgress);
    if (result.built) imagesBuilt.push(result.ref);
  }

  const labels = { ...plan.labels, ...ownerLabels() };
  const created: { containers: Docker.Container[]; networks: Docker.Network[] } = { containers: [], networks: [] };
  let aborted = false;
  try {
    throwIfAborted(io.signal);
    for (const network of plan.networks) {
      const handle = await docker.createNetwork({
        Name: network.name,
        Driver: "bridge",
        Internal: network.internal,
        Options: network.options,
        CheckDuplicate: true,
        Labels: { ...labels, "perstack.role": `network-${network.role}` },
      });
      created.networks.push(handle);
    }

    const proxy = await startProxy(docker, plan, io, labels, created);
    const proxyIp = await addressOn(proxy, plan.networks.find((n) => n.role === "internal")!.name);

    throwIfAborted(io.signal);
    const homeDir = await writeHomeFiles(io.filesDir, plan.agent.homeFiles);
    const agent = await docker.createContainer({
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
        Binds: [
          ...plan.agent.mounts.map((m) => `${m.source}:${m.target}:${m.readOnly ? "ro" : "rw"}`),
          `${plan.agent.resolvConf}:/etc/resolv.conf:ro`,
          ...(homeDir ? [`${homeDir}:${AGENT_HOME_FILES}:ro`] : []),
        ],
        Tmpfs: plan.agent.tmpfs,
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        Memory: plan.agent.limits.memoryBytes,
        MemorySwap: plan.agent.limits.memoryBytes,
        NanoCpus: plan.agent.limits.nanoCpus,
        PidsLimit: plan.agent.limits.pidsLimit,
        Init: true,
      },
    });
    created.containers.push(agent);

    const stream = await agent.attach({ stream: true, stdout: true, stderr: true });
    const streamEnded = new Promise<void>((resolve) => {
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", () => resolve());
    });
    docker.modem.demuxStream(stream, io.agentStdout, io.agentStderr);

    const onAbort = () => {
      aborted = true;
      agent.kill({ signal: "SIGKILL" }).catch(() => {});
    };
    io.signal.addEventListener("abort", onAbort, { once: true });
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      agent.kill({ signal: "SIGKILL" }).catch(() => {});
    }, plan.agent.limits.maxDurationMs);
    try {
      await agent.start();
      io.containerStatus("agent", "running");
      const waited = (await agent.wait()) as { StatusCode: number };
      // The attach stream can trail the exit by a moment; wait for it so no output is lost.
      await Promise.race([streamEnded, delay(5_000)]);
      // The proxy's last access-log lines are relayed by tail; give them a moment before it is removed.
      await delay(300);
      io.containerStatus("agent", `exited with code ${waited.StatusCode}`);
      return { exitCode: waited.StatusCode, imagesBuilt, aborted: aborted || io.signal.aborted, timedOut };
    } finally {
      clearTimeout(deadline);
      io.signal.removeEventListener("abort", onAbort);
    }
  } catch (error) {
    if (io.signal.aborted) return { exitCode: 130, imagesBuilt, aborted: true, timedOut: false };
    throw error;
  } finally {
    await removeAll(created);
  }
}

async function startProxy(
  docker: Docker,
  plan: SandboxPlan,
  io: SandboxIO,
  labels: Record<string, string>,
  created: { containers: Docker.Container[] },
): Promise<Docker.Container> {
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
      Binds: [`${squidConf}:/etc/squid/squid.conf:ro`],
      ReadonlyRootfs: true,
      Tmpfs: PROXY_TMPFS,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Memory: 256 * 1024 ** 2,
      PidsLimit: 128,
    },
  });
  created.containers.push(proxy);
  await docker.getNetwork(internal).connect({ Container: proxy.id, EndpointConfig: { Aliases: [plan.proxy.alias] } });

  const logs = await proxy.attach({ stream: true, stdout: true, stderr: true });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(logs, stdout, stderr);
  forEachLine(stdout, io.proxyLogLine);
  const cacheLog: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new SandboxError(`the proxy did not start within ${PROXY_START_TIMEOUT_MS / 1000}s: ${cacheLog.slice(-5).join(" | ")}`)),
      PROXY_START_TIMEOUT_MS,
    );
    forEachLine(stderr, (line) => {
      cacheLog.push(line);
      if (cacheLog.length > 50) cacheLog.shift();
      if (PROXY_READY.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    logs.on("end", () => {
      clearTimeout(timer);
      reject(new SandboxError(`the proxy exited at start: ${cacheLog.slice(-5).join(" | ") || "no output"}`));
    });
  });
  await proxy.start();
  io.containerStatus("proxy", "starting");
  await ready;
  io.containerStatus("proxy", "running");
  return proxy;
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

/** Best effort, in order: containers before the networks they sit on. */
export async function removeAll(created: { containers: Docker.Container[]; networks: Docker.Network[] }): Promise<void> {
  for (const container of created.containers.reverse()) {
    await container.remove({ force: true }).catch(ignoreMissing).catch(() => {});
  }
  for (const network of created.networks.reverse()) {
    await network.remove().catch(ignoreMissing).catch(() => {});
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SandboxError("interrupted");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
