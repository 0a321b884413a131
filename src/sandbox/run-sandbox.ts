// EFFECTS: carries out a SandboxPlan with the Engine API. A slot on the engine, networks, proxy and gateway, workspace
// volume, agent; streams the agent's output to the caller; removes everything it created after success, failure or
// abort.
//
// What does not depend on each other happens side by side: the images are checked together, the two networks are
// created together, and the agent's container is created (and its workspace copied in) as soon as the internal
// network exists, while the proxy and the gateway start, since the proxy's address on the internal network is fixed
// in advance. The agent's command starts when both sidecars say they are ready. A run that finds a warm shell that
// fits (its networks, sidecars and agent network namespace made ahead, warm-shells.ts; PERSTACK_WARM_POOL) claims it
// instead, and only creates its agent's container.
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import type Docker from "dockerode";
import { engineSharingFromEnv, type EngineSharing } from "../config/engine-env.js";
import { EngineLostError, SandboxError } from "../errors.js";
import { handoverText } from "../gateway/handover.js";
import { AGENT_HOME_FILES, type ResourceLimits, type SandboxPlan } from "../plan/sandbox-plan.js";
import { shellSpecOf } from "../plan/warm-shell.js";
import type { HomeFile } from "../runtimes/types.js";
import { LineSplitter } from "../stream/line-splitter.js";
import { explainDockerError } from "./docker-errors.js";
import type { EngineLoss } from "./engine-loss.js";
import { afterEngineLoss, EngineWatch } from "./engine-watch.js";
import { ensureImage, type BuildProgress } from "./image-builder.js";
import { ownerLabels } from "./labels.js";
import { bindMount, volumeMount } from "./mounts.js";
import { createEachRunNetwork, type RunNetwork } from "./run-networks.js";
import { acquireRunSlot } from "./run-slots.js";
import { SandboxResources } from "./sandbox-resources.js";
import { connectProxyToInternal, gatewayCreateOptions, proxyCreateOptions } from "./sidecar-containers.js";
import { claimWarmShell, refillInBackground, type ClaimedShell } from "./warm-shells.js";
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
  /** Directory for files the agent's container mounts (the runtime's HOME files), and the record of squid.conf. */
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
  /**
   * Shared with the caller so it can name what is left if removal cannot finish. When given, and the agent has
   * exited, removal starts as the run ends but is not awaited here: the caller records and prints the result first,
   * then awaits `resources.removeAll()` (which joins the removal under way) before it exits. Otherwise runSandbox
   * waits for the removal.
   */
  resources?: SandboxResources;
  /**
   * With `resources`: once the agent has exited, leave the removal to the caller altogether (it hands the sandbox to
   * a teardown process, teardown-handoff.ts). Before that, or on failure, removal is waited for here as always.
   */
  leaveRemovalToCaller?: boolean;
  /** The subnet pool and the engine-wide run limit (default: PERSTACK_* unset). */
  sharing?: EngineSharing;
  /** Every run slot on the engine is taken: the run waits for one (called once). */
  waitingForSlot?(running: number, limit: number): void;
}

export interface SandboxResult {
  exitCode: number;
  imagesBuilt: string[];
  aborted: boolean;
  /** The agent was stopped at the plan's maxDurationMs. */
  timedOut: boolean;
  /** The agent was stopped because this sidecar stopped while it ran: it had no way out any more. */
  sidecarStopped?: "proxy" | "gateway";
  /** The Docker engine stopped or restarted while the agent ran (engine-watch.ts); exitCode means nothing then. */
  engineLost?: EngineLoss;
}

export { PROXY_HARDENING } from "./sidecar-containers.js";

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
/** The attach stream can trail the agent's exit by a moment; this is only a bound in case it never ends. */
const AGENT_OUTPUT_BOUND_MS = 5_000;
/** Bound on the sidecars' end-of-output marks (normally a few ms), for a sidecar that died or hangs. */
const MARK_BOUND_MS = 3_000;

/** A started sidecar: `mark` resolves once everything it printed before being asked has been read. */
interface Sidecar {
  container: Docker.Container;
  mark(): Promise<void>;
  /** Resolves when its output ends: it has stopped (or the engine dropped the connection to it). */
  ended: Promise<void>;
}

export async function runSandbox(docker: Docker, plan: SandboxPlan, io: SandboxIO): Promise<SandboxResult> {
  const imagesBuilt: string[] = [];
  const resources = io.resources ?? new SandboxResources(docker);
  const sharing = io.sharing ?? engineSharingFromEnv({});
  const labels = { ...plan.labels, ...ownerLabels() };
  let aborted = false;
  // Until the agent is known to have exited, removal is waited for here: the caller must not treat the workspace as
  // the agent's no more while it may still be running.
  let agentExited = false;
  const engine = new EngineWatch(docker);
  try {
    const built = await doing("building the run's images", Promise.all(plan.images.map((image) => ensureImage(docker, image, io.buildProgress, io.signal))));
    for (const result of built) if (result.built) imagesBuilt.push(result.ref);

    throwIfAborted(io.signal);
    await doing(
      "waiting for a free run slot",
      acquireRunSlot(docker, {
        limit: sharing.maxConcurrentRuns,
        image: plan.proxy.image,
        labels,
        resources,
        signal: io.signal,
        onWaiting: (running) => io.waitingForSlot?.(running, sharing.maxConcurrentRuns),
      }),
    );

    throwIfAborted(io.signal);
    // The pool is refilled (or, at 0, emptied) once the sandbox is gone, by whoever removes it (teardown-handoff.ts).
    const spec = shellSpecOf(plan, sharing.subnetPool);
    if (spec) resources.refill = { spec, size: sharing.warmPool };
    const beforeShell = resources.mark();
    const shell =
      spec && sharing.warmPool > 0 ? await claimWarmShell(docker, spec, labels, { proxy: plan.proxy.containerName, gateway: plan.gateway!.containerName }, resources) : undefined;
    const warm = shell && (await useWarmShell(docker, plan, io, labels, resources, shell).catch(async (error: unknown) => {
      // A shell whose proxy or gateway died after the look (or whose agent could not join it) is no reason to fail
      // the run: it is removed, with what the run created in it, and the run makes its own, as without a shell.
      if (io.signal.aborted || (await engine.check())) throw error;
      io.containerStatus(shellPartOf(error), `warm shell unusable (${(error as Error).message.slice(0, 300)}); starting the run's own sidecars`);
      await resources.removeAfter(beforeShell);
      return undefined;
    }));
    const [proxy, gateway, gated] = warm ?? (await buildSidecars(docker, plan, io, labels, resources, sharing));
    const agent = gated.container;

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
    // A sidecar that stops while the agent runs leaves it without a way out (the proxy) or a model (the gateway): the
    // agent would only retry until its deadline. It is stopped at once, and the run says which one went.
    let sidecarStopped: SandboxResult["sidecarStopped"];
    const watchSidecar = (service: "proxy" | "gateway", sidecar: Sidecar | undefined) =>
      void sidecar?.ended.then(async () => {
        if (agentExited || sidecarStopped) return;
        // Every container's output ends when the engine goes down, too: then it was the engine, not the sidecar.
        if ((await engine.check()) || agentExited || sidecarStopped) return;
        sidecarStopped = service;
        void kill();
      });
    watchSidecar("proxy", proxy);
    watchSidecar("gateway", gateway);
    try {
      // An interrupt that came while the container was being started: the listener above never saw it.
      throwIfAborted(io.signal);
      gated.open();
      io.containerStatus("agent", "running");
      // What the agent's last requests made the proxy and the gateway print is still on its way: it is asked for as
      // soon as the agent's output ends (its process is gone by then), while the engine reports the exit.
      // Asking twice joins the first ask (Mark).
      const askMarks = () => (io.hurry?.aborted ? Promise.resolve() : Promise.all([proxy.mark(), gateway?.mark()]).then(() => undefined));
      void gated.outputEnded.then(askMarks);
      // Raced with the engine's loss: when the engine is killed, this wait never settles.
      const waitRequest = new AbortController();
      const ended = await Promise.race([
        agent.wait({ abortSignal: waitRequest.signal }).then(
          (value: { StatusCode: number }) => ({ value }),
          (error: unknown) => ({ error }),
        ),
        engine.lost.then(() => undefined),
      ]);
      // An engine that shuts down stops the agent too (exit code 143): an ended wait counts once the engine answers.
      if (ended === undefined || (await engine.check())) {
        waitRequest.abort();
        agentExited = true;
        const engineLost = await afterEngineLoss(engine, resources, {
          signal: io.signal,
          status: (text) => io.containerStatus("agent", text),
          beforeRemoval: async () => {
            // With live-restore the agent survived the restart, unseen: it is stopped before its work is read.
            await agent.kill({ signal: "SIGKILL" }).catch(() => {});
            if (io.workspace?.collect && !io.hurry?.aborted) await io.workspace.collect(agent);
          },
        });
        return { exitCode: -1, imagesBuilt, aborted: io.signal.aborted, timedOut, ...(engineLost ? { engineLost } : {}) };
      }
      if ("error" in ended) throw explainDockerError(ended.error, "waiting for the agent");
      const waited = ended.value;
      agentExited = true;
      await Promise.race([gated.outputEnded, bound(AGENT_OUTPUT_BOUND_MS)]);
      await askMarks();
      io.containerStatus("agent", `exited with code ${waited.StatusCode}`);
      if (io.workspace?.collect && !io.hurry?.aborted) await doing("copying the agent's work back", io.workspace.collect(agent));
      return { exitCode: waited.StatusCode, imagesBuilt, aborted: aborted || io.signal.aborted, timedOut, ...(sidecarStopped ? { sidecarStopped } : {}) };
    } finally {
      clearTimeout(deadline);
      io.signal.removeEventListener("abort", onAbort);
      io.stop?.removeEventListener("abort", onStop);
    }
  } catch (error) {
    if (io.signal.aborted) return { exitCode: 130, imagesBuilt, aborted: true, timedOut: false };
    // A step that failed because the engine went away (while building, starting the sidecars, copying back): the
    // run says so, and removes its sandbox once the engine is back.
    if (await engine.check()) {
      const lost = await afterEngineLoss(engine, resources, { signal: io.signal, status: (text) => io.containerStatus("agent", text) });
      if (!lost) return { exitCode: 130, imagesBuilt, aborted: true, timedOut: false };
      throw new EngineLostError(lost.message, lost.name);
    }
    throw error;
  } finally {
    if (!(io.resources && agentExited && io.leaveRemovalToCaller)) {
      const removal = resources.removeAll();
      if (!io.resources || !agentExited) await removal;
      // Removed here, for good: the warm pool is brought to its size in the background (a caller that removes the
      // sandbox itself does that, teardown-handoff.ts).
      if (!io.resources) await refillInBackground(docker, resources);
    }
  }
}

type Started = readonly [Sidecar, Sidecar | undefined, GatedAgent];

/**
 * The run's own networks and sidecars. Each container starts as soon as its networks exist: the agent's (held at its
 * gate) on the internal network alone, so the engine's own start-up begins first and overlaps the sidecars'; the
 * gateway on the egress network; the proxy on both. The gateway and the proxy start side by side (squid resolves the
 * gateway's name only when a request comes). Every branch is waited for even when one fails, so nothing is created
 * after the removal has begun.
 */
function buildSidecars(docker: Docker, plan: SandboxPlan, io: SandboxIO, labels: Record<string, string>, resources: SandboxResources, sharing: EngineSharing): Promise<Started> {
  const eachNetwork = createEachRunNetwork(docker, plan.networks, sharing.subnetPool, labels, resources);
  const networkOf = (role: "internal" | "egress") => doing("creating the run's networks", eachNetwork[plan.networks.findIndex((n) => n.role === role)]!);
  const internalReady = networkOf("internal");
  const egressReady = networkOf("egress");
  const networksReady = Promise.all([internalReady, egressReady]);
  return settleAll([
    networksReady.then((networks) => doing("starting the proxy", startProxy(docker, plan, io, labels, resources, networks))),
    plan.gateway ? egressReady.then((egress) => doing("starting the provider gateway", startGateway(docker, plan, io, labels, resources, egress))) : Promise.resolve(undefined),
    internalReady.then((internal) => startGatedAgent(docker, plan, io, labels, resources, internal)),
  ] as const);
}

/**
 * A claimed warm shell (warm-shells.ts): its networks exist and its sidecars run, waiting for their handover. The agent
 * is created on its internal network while the proxy and the gateway get their configuration.
 */
function useWarmShell(docker: Docker, plan: SandboxPlan, io: SandboxIO, labels: Record<string, string>, resources: SandboxResources, shell: ClaimedShell): Promise<Started> {
  return settleAll([
    doing("handing the proxy its policy", handOverToProxy(docker, shell.proxy, plan, io, false)),
    doing("handing the provider gateway its configuration", handOverToGateway(docker, shell.gateway, plan, io, false)),
    startGatedAgent(docker, plan, io, labels, resources, shell.internal, shell.agentNetwork),
  ] as const);
}

/** Which part of a warm shell an error of useWarmShell is about, for its status line. */
function shellPartOf(error: unknown): "proxy" | "gateway" | "agent" {
  const message = (error as Error).message ?? "";
  return /provider gateway/.test(message) ? "gateway" : /proxy/.test(message) ? "proxy" : "agent";
}

/** Runs `work`, and says what was being done if the Docker engine fails it. */
async function doing<T>(what: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw explainDockerError(error, what);
  }
}

/** Like Promise.all, but settles every promise before rejecting with the first failure. */
async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/** The agent's container, started and waiting at its gate; its output is already streaming to the caller. */
interface GatedAgent {
  container: Docker.Container;
  /** Lets the agent's command start: the proxy and the gateway are ready. */
  open(): void;
  outputEnded: Promise<void>;
}

/**
 * Creates and starts the agent's container while the sidecars start. Its entrypoint (templates/files/agent-entrypoint.sh)
 * waits for one line on stdin before it runs the agent's command; `open` sends it and closes stdin, so the command
 * sees an empty stdin as before. The container's start, the slowest part of the agent's, no longer waits for the
 * sidecars: only the command does.
 */
async function startGatedAgent(
  docker: Docker,
  plan: SandboxPlan,
  io: SandboxIO,
  labels: Record<string, string>,
  resources: SandboxResources,
  internal: RunNetwork,
  agentNetwork?: Docker.Container,
): Promise<GatedAgent> {
  const agent = await doing("creating the agent's container", createAgent(docker, plan, io, labels, resources, internal, agentNetwork));
  // Attached before it starts, so no output is lost; with stdin, for the gate.
  const stream = (await doing("attaching to the agent", agent.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }))) as NodeJS.ReadWriteStream;
  const outputEnded = new Promise<void>((resolve) => {
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
  docker.modem.demuxStream(stream, io.agentStdout, io.agentStderr);
  // An interrupt while the container was being created or filled: it never starts.
  throwIfAborted(io.signal);
  await doing("starting the agent", agent.start());
  return {
    container: agent,
    open: () => {
      stream.write("\n");
      stream.end();
    },
    outputEnded,
  };
}

/**
 * Creates the agent's container, and in copy mode its workspace volume, filled; it starts later. On the internal
 * network at the agent's address, or in a warm shell, in the network namespace its holder keeps there already (the
 * resolver, host entry and sysctls are the namespace's, set on the holder).
 */
async function createAgent(
  docker: Docker,
  plan: SandboxPlan,
  io: SandboxIO,
  labels: Record<string, string>,
  resources: SandboxResources,
  internal: RunNetwork,
  agentNetwork?: Docker.Container,
): Promise<Docker.Container> {
  const workspace = plan.agent.workspace;
  const volume = workspace.mode === "copy" ? await createWorkspaceVolume(docker, plan, workspace.volumeName, labels, resources) : undefined;
  const homeDir = await writeHomeFiles(io.filesDir, plan.agent.homeFiles);
  throwIfAborted(io.signal);
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
    // For the start gate only (startGatedAgent): closed once the gate opens.
    AttachStdin: true,
    OpenStdin: true,
    StdinOnce: true,
    Tty: false,
    HostConfig: {
      ...(agentNetwork
        ? { NetworkMode: `container:${agentNetwork.id}` }
        : { NetworkMode: internal.plan.name, ExtraHosts: [`${plan.proxy.alias}:${internal.proxyAddress}`], Dns: plan.agent.dns, Sysctls: plan.agent.sysctls }),
      // The Mounts API, not Binds strings: host paths may contain ':'. Docker orders them parent first.
      Mounts: [
        ...(workspace.mode === "copy" ? [volumeMount(workspace.volumeName, "/workspace", { copyFromImage: volume?.ownerFromImage === true })] : []),
        ...plan.agent.mounts.map((m) => bindMount(m.source, m.target, m.readOnly)),
        ...(io.workspace?.mounts ?? []).map((m) => bindMount(m.source, m.target, false)),
        bindMount(plan.agent.resolvConf, "/etc/resolv.conf", true),
        ...(homeDir ? [bindMount(homeDir, AGENT_HOME_FILES, true)] : []),
      ],
      Tmpfs: plan.agent.tmpfs,
      // The engine keeps the agent's output whatever the daemon's default driver: if this process dies, the next one
      // reads what it missed from there (job/recover-run.ts). Bounded like the output the run may record.
      LogConfig: { Type: "json-file", Config: { "max-size": `${Math.ceil((plan.agent.limits.maxOutputBytes * 2) / 1024 ** 2) + 1}m`, "max-file": "1" } },
      ...agentHardening(plan.agent.limits),
    },
    ...(agentNetwork ? {} : { NetworkingConfig: { EndpointsConfig: { [internal.plan.name]: { IPAMConfig: { IPv4Address: internal.agentAddress } } } } }),
  });
  resources.container(plan.agent.containerName, agent);
  if (io.workspace?.fill) await io.workspace.fill(agent);
  return agent;
}

/**
 * The proxy, on the egress network and, at its fixed address, on the internal one. Its policy (squid.conf) and the
 * secret of its end-of-log mark are handed over on its stdin once it runs (squid/entrypoint.sh): neither is in its
 * container's metadata or in a file on the host. The mark is a request it refuses and logs, naming that secret, which
 * only this process knows: the agent cannot forge it to cut the log short.
 */
async function startProxy(
  docker: Docker,
  plan: SandboxPlan,
  io: SandboxIO,
  labels: Record<string, string>,
  resources: SandboxResources,
  networks: RunNetwork[],
): Promise<Sidecar> {
  const egress = networks.find((n) => n.plan.role === "egress")!;
  const internal = networks.find((n) => n.plan.role === "internal")!;
  const proxy = await docker.createContainer(
    proxyCreateOptions({ name: plan.proxy.containerName, image: plan.proxy.image, labels, egress: egress.plan.name, extraHosts: plan.proxy.extraHosts }),
  );
  resources.container(plan.proxy.containerName, proxy);
  await connectProxyToInternal(docker, proxy, internal.plan.name, plan.proxy.alias, internal.proxyAddress);
  return handOverToProxy(docker, proxy, plan, io, true);
}

/**
 * Gives the proxy its run's policy and the secret of its end-of-log mark on stdin, starting it first if `start`, and
 * waits until squid accepts connections.
 */
async function handOverToProxy(docker: Docker, proxy: Docker.Container, plan: SandboxPlan, io: SandboxIO, start: boolean): Promise<Sidecar> {
  // For the record only (the run's sandbox/ directory): the policy as the proxy got it. Nothing mounts it.
  await mkdir(io.filesDir, { recursive: true });
  await writeFile(join(io.filesDir, "squid.conf"), plan.proxy.squidConf, { mode: 0o644 });
  const markSecret = randomBytes(16).toString("hex");
  const cacheLog: string[] = [];
  const marked = new Mark();
  const handover = `${markSecret}\n${plan.proxy.squidConf}`;
  const { ended } = await startSidecar(docker, proxy, io, "proxy", "the proxy", start, handover, cacheLog, ({ stdout, stderr }, ready) => {
    forEachLine(stdout, (line) => (line.includes(markSecret) ? marked.seen() : io.proxyLogLine(line)));
    stdout.on("end", () => marked.seen());
    forEachLine(stderr, (line) => {
      remember(cacheLog, line);
      if (PROXY_READY.test(line)) ready();
    });
  });
  return { container: proxy, mark: () => marked.ask(proxy), ended };
}

/**
 * The provider gateway, on the egress network only: the agent reaches it solely through squid (as the one
 * configured upstream), and it reaches the provider directly. Its config and its secrets (the run's token, the real
 * credentials) are handed over on its stdin once it runs (gateway/handover.ts): they are in no container metadata and
 * in no file on the host.
 */
async function startGateway(
  docker: Docker,
  plan: SandboxPlan,
  io: SandboxIO,
  labels: Record<string, string>,
  resources: SandboxResources,
  egressNetwork: RunNetwork,
): Promise<Sidecar> {
  const gateway = plan.gateway!;
  const container = await docker.createContainer(
    gatewayCreateOptions({ name: gateway.containerName, image: gateway.image, labels, egress: egressNetwork.plan.name, extraHosts: gateway.extraHosts, alias: gateway.alias }),
  );
  resources.container(gateway.containerName, container);
  return handOverToGateway(docker, container, plan, io, true);
}

/** Gives the gateway its config and secrets on stdin, starting it first if `start`, and waits until it listens. */
async function handOverToGateway(docker: Docker, container: Docker.Container, plan: SandboxPlan, io: SandboxIO, start: boolean): Promise<Sidecar> {
  const gateway = plan.gateway!;
  const errors: string[] = [];
  const marked = new Mark();
  const handover = handoverText({
    files: { "gateway.json": `${JSON.stringify(gateway.config, null, 2)}\n`, ...(gateway.pricingTable !== undefined ? { "prices.json": gateway.pricingTable } : {}) },
    env: io.gatewayEnv ?? {},
  });
  const { ended } = await startSidecar(docker, container, io, "gateway", "the provider gateway", start, handover, errors, ({ stdout, stderr }, ready) => {
    forEachLine(stderr, (line) => remember(errors, line));
    // The gateway's own records: the agent cannot make it print one of these types.
    forEachLine(stdout, (line) => (line.includes('"gatewayReady"') ? ready() : line.includes('"gatewayMark"') ? marked.seen() : io.gatewayLine?.(line)));
    stdout.on("end", () => marked.seen());
  });
  return { container, mark: () => marked.ask(container), ended };
}

/**
 * A sidecar's end-of-output mark: asked for with SIGUSR2, seen when the sidecar prints it (or its output ends). Only a
 * bound, never a fixed wait: a sidecar that cannot answer costs MARK_BOUND_MS at most.
 */
class Mark {
  private resolveSeen: () => void = () => {};
  private readonly seenPromise = new Promise<void>((resolve) => {
    this.resolveSeen = resolve;
  });
  private asked: Promise<void> | undefined;

  seen(): void {
    this.resolveSeen();
  }

  ask(container: Docker.Container): Promise<void> {
    this.asked ??= (async () => {
      const sent = await container.kill({ signal: "SIGUSR2" }).then(
        () => true,
        () => false,
      );
      // Not running any more: its output has ended, or will at once.
      await Promise.race([this.seenPromise, bound(sent ? MARK_BOUND_MS : 500)]);
    })();
    return this.asked;
  }
}

/**
 * Starts a sidecar (the proxy, the gateway) unless it runs already (a claimed warm shell), hands it its run's
 * configuration on stdin, and waits until `watch` sees it say it is ready. A timeout, an interrupt or the sidecar
 * exiting first is an error that names it and quotes its last lines (`recent`).
 */
async function startSidecar(
  docker: Docker,
  container: Docker.Container,
  io: SandboxIO,
  service: "proxy" | "gateway",
  what: string,
  start: boolean,
  handover: string,
  recent: string[],
  watch: (streams: { stdout: PassThrough; stderr: PassThrough }, ready: () => void) => void,
): Promise<{ ended: Promise<void> }> {
  // Attached before it starts, so no output is lost; with stdin, for the handover.
  const logs = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
  const ended = new Promise<void>((resolve) => {
    logs.on("end", () => resolve());
    logs.on("close", () => resolve());
    logs.on("error", () => resolve());
  });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(logs, stdout, stderr);
  logs.on("end", () => {
    stdout.end();
    stderr.end();
  });
  const last = () => recent.slice(-5).join(" | ");
  let onAbort: () => void = () => {};
  let started = false;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new SandboxError(`${what} did not start within ${SIDECAR_START_TIMEOUT_MS / 1000}s: ${last()}`)), SIDECAR_START_TIMEOUT_MS);
    onAbort = () => {
      clearTimeout(timer);
      reject(new SandboxError("interrupted"));
    };
    io.signal.addEventListener("abort", onAbort, { once: true });
    watch({ stdout, stderr }, () => {
      clearTimeout(timer);
      started = true;
      resolve();
    });
    logs.on("end", () => {
      clearTimeout(timer);
      if (!started) reject(new SandboxError(`${what} exited at start: ${last() || "no output"}`));
    });
  });
  // When the start itself fails, nobody awaits `ready`: its rejection must not end the process.
  ready.catch(() => undefined);
  try {
    if (start) await container.start();
    io.containerStatus(service, "starting");
    logs.write(handover);
    logs.end();
    await ready;
  } finally {
    io.signal.removeEventListener("abort", onAbort);
  }
  io.containerStatus(service, "running");
  return { ended };
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

function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const splitter = new LineSplitter(onLine, () => {}, 65_536);
  stream.on("data", (chunk: Buffer) => splitter.push(chunk));
  stream.on("end", () => splitter.end());
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SandboxError("interrupted");
}

/** Resolves after `ms`: an upper bound raced against a real signal, never a wait on its own. */
function bound(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
