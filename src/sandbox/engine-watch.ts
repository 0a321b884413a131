// EFFECTS: tells a Docker engine that stopped or restarted under a run apart from one of the run's containers
// stopping, and cleans up after it once the engine is back.
//
// What the run sees is the same in both cases: the containers' output streams end. When the engine shuts down
// (SIGTERM) it also stops the agent, whose wait then answers with exit code 143; when it is killed, the wait's
// connection drops without an answer and the request never settles (both seen on 20.10 with live-restore off). Only
// the engine can say which it was, and it has to be asked on a new connection: a stopping engine refuses new
// connections at once, but goes on answering on open ones while it stops its containers (for seconds), and Node's
// default agent keeps idle connections open for reuse.
import http from "node:http";
import https from "node:https";
import Docker from "dockerode";
import { engineAddress } from "./docker-errors.js";
import { engineLoss, type EngineLoss } from "./engine-loss.js";
import { removalCommands, type SandboxResources } from "./sandbox-resources.js";

/** How long an engine that is up may take to answer a ping before it counts as gone. */
const PING_BOUND_MS = 3_000;
const POLL_MS = 500;
/** How long a run waits for a lost engine to answer again before it leaves its sandbox to a later sweep. */
export const ENGINE_RETURN_BOUND_MS = 60_000;
/** Removal passes once the engine is back: one that has just restarted may refuse a removal for a moment. */
const REMOVAL_PASSES = 3;

/** The connection settings dockerode's modem keeps (docker-modem), to open the same engine without reuse. */
interface ModemSettings {
  socketPath?: unknown;
  host?: string;
  port?: string | number;
  protocol?: "http" | "https" | "ssh";
  pathPrefix?: string;
  username?: string;
  password?: string;
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
  version?: string;
  headers?: Record<string, string>;
  sshOptions?: unknown;
  checkServerIdentity?: unknown;
}

/** The same engine as `docker`, over a new connection for every request. */
function withoutConnectionReuse(docker: Docker): Docker {
  const modem = (docker as { modem?: ModemSettings }).modem;
  if (!modem) return docker;
  const agent = modem.protocol === "https" ? new https.Agent({ keepAlive: false }) : new http.Agent({ keepAlive: false });
  // Every setting is passed, undefined ones too: the client fills the missing ones from DOCKER_HOST, which may name
  // another engine than the one `docker` was made for.
  return new Docker({
    socketPath: modem.socketPath,
    host: modem.host,
    port: modem.port,
    protocol: modem.protocol,
    pathPrefix: modem.pathPrefix,
    username: modem.username,
    password: modem.password,
    ca: modem.ca,
    cert: modem.cert,
    key: modem.key,
    version: modem.version,
    headers: modem.headers,
    sshOptions: modem.sshOptions,
    checkServerIdentity: modem.checkServerIdentity,
    agent,
  } as unknown as Docker.DockerOptions);
}

export class EngineWatch {
  /** Resolves once a check found the engine gone. */
  readonly lost: Promise<void>;
  private markLost: () => void = () => {};
  private gone = false;
  private asking: Promise<boolean> | undefined;
  private fresh: Docker | undefined;

  constructor(private readonly docker: Docker) {
    this.lost = new Promise((resolve) => {
      this.markLost = resolve;
    });
  }

  /** True when the engine does not answer: it is stopping, restarting, or gone. Checks side by side share one ping. */
  check(): Promise<boolean> {
    if (this.gone) return Promise.resolve(true);
    this.asking ??= this.answers().then((up) => {
      this.asking = undefined;
      if (!up) {
        this.gone = true;
        this.markLost();
      }
      return !up;
    });
    return this.asking;
  }

  /** Polls until the engine answers again; false when it has not within `boundMs`, or `signal` aborted the wait. */
  async answersAgain(boundMs: number, signal: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + boundMs;
    while (!signal.aborted) {
      if (await this.answers()) return true;
      if (Date.now() + POLL_MS > deadline) return false;
      await pause(POLL_MS, signal);
    }
    return false;
  }

  private async answers(): Promise<boolean> {
    let fresh: Docker;
    try {
      // Made when first needed: most runs ask once, at the end.
      fresh = this.fresh ??= withoutConnectionReuse(this.docker);
    } catch {
      // Nothing to ask with: the engine is taken to be up, and the run goes on as it would have without asking.
      return true;
    }
    try {
      await (fresh.ping as (options: { abortSignal: AbortSignal }) => Promise<unknown>).call(fresh, { abortSignal: AbortSignal.timeout(PING_BOUND_MS) });
      return true;
    } catch {
      return false;
    }
  }
}

export interface AfterEngineLoss {
  /** The user interrupts: stop waiting for the engine. */
  signal: AbortSignal;
  /** Says what the run is waiting for (a container status event). */
  status(text: string): void;
  /** Once the engine is back, before the sandbox is removed (the agent's work is copied back here). */
  beforeRemoval?(): Promise<void>;
  boundMs?: number;
}

/**
 * The engine was lost under a run: waits (bounded) for it to answer again, then removes the run's sandbox.
 * Undefined when the user interrupted the wait; otherwise what the run says, naming whatever is left.
 */
export async function afterEngineLoss(engine: EngineWatch, resources: SandboxResources, options: AfterEngineLoss): Promise<EngineLoss | undefined> {
  const boundMs = options.boundMs ?? ENGINE_RETURN_BOUND_MS;
  options.status(`stopped: the Docker engine stopped answering; waiting up to ${Math.round(boundMs / 1000)} s for it to remove the sandbox`);
  const back = await engine.answersAgain(boundMs, options.signal);
  if (options.signal.aborted) return undefined;
  if (back) {
    // Best effort: whatever fails here leaves the workspace as it was before the run, and the removal still happens.
    await options.beforeRemoval?.().catch(() => undefined);
    for (let pass = 1; pass <= REMOVAL_PASSES && resources.remaining().length > 0; pass++) {
      if (pass > 1) await pause(POLL_MS, options.signal);
      await resources.removeAll();
    }
  }
  const left = resources.remaining();
  return engineLoss({ back, boundMs, where: engineAddress(), left, removal: removalCommands(left) });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
