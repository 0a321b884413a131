// PURE: a Docker failure, as dockerode reports it, into what happened and what to do. The engine's own wording
// ("(HTTP code 404) no such container - No such image: …") names internals, changes between versions and says
// nothing about what the user can do, so it never reaches the user as is. Unknown failures keep the engine's
// message, but framed: what perstack was doing, and what to try.
import { DockerUnavailableError, EngineDiskFullError, PerstackError, SandboxError } from "../errors.js";

/** What dockerode's errors carry: an HTTP status and the engine's JSON body, or a socket error code. */
interface DockerErrorShape {
  statusCode?: number;
  code?: string;
  message?: string;
  json?: { message?: string } | null;
}

const UNREACHABLE = new Set(["ECONNREFUSED", "ENOENT"]);
const NO_PERMISSION = new Set(["EACCES", "EPERM"]);
const CONNECTION_LOST = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNABORTED", "EAI_AGAIN", "ENOTFOUND"]);

/** Where the engine is, as dockerode finds it. */
export function engineAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_HOST ?? "/var/run/docker.sock";
}

/** True for an error that came from talking to the Docker engine (an HTTP status or a socket error). */
export function isDockerFailure(error: unknown): boolean {
  if (error instanceof PerstackError || typeof error !== "object" || error === null) return false;
  const e = error as DockerErrorShape;
  if (typeof e.statusCode === "number") return true;
  return typeof e.code === "string" && (UNREACHABLE.has(e.code) || NO_PERMISSION.has(e.code) || CONNECTION_LOST.has(e.code)) ||
    /socket hang up/i.test(e.message ?? "");
}

/** The engine's own message, without dockerode's "(HTTP code N) reason - " prefix. */
function engineMessage(e: DockerErrorShape): string {
  const text = e.json?.message ?? (e.message ?? "").replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, "");
  return text.replace(/\s+/g, " ").trim();
}

function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * `doing` says what perstack was doing, as a phrase that follows "while" ("creating the run's networks"). Errors
 * that are not Docker failures, and perstack's own errors, are returned as they are.
 */
export function explainDockerError(error: unknown, doing: string, env: NodeJS.ProcessEnv = process.env): Error {
  if (!isDockerFailure(error)) return error instanceof Error ? error : new Error(String(error));
  const e = error as DockerErrorShape;
  const where = engineAddress(env);
  if (e.code && UNREACHABLE.has(e.code)) {
    return new DockerUnavailableError(`no Docker engine answers at ${where} (while ${doing}); start Docker, or set DOCKER_HOST to the engine to use`);
  }
  if (e.code && NO_PERMISSION.has(e.code)) {
    return new DockerUnavailableError(
      `no permission to use the Docker engine at ${where} (while ${doing}); add your user to the docker group and log in again, or run as a user who may use Docker`,
    );
  }
  if (typeof e.statusCode !== "number") {
    return new DockerUnavailableError(`lost the connection to the Docker engine at ${where} while ${doing}; check that it is running (docker info), then run again`);
  }
  return explainEngineReply(e.statusCode, engineMessage(e), doing);
}

function explainEngineReply(status: number, message: string, doing: string): PerstackError {
  let match: RegExpExecArray | null;
  if (/no space left on device/i.test(message)) {
    return new EngineDiskFullError(
      `the Docker engine's disk is full (while ${doing}); free space with "perstack images prune" and "docker system prune", then run again`,
    );
  }
  if (/non-overlapping IPv4 address pool|available, non-overlapping|address pools? (have been|are) (fully )?subnetted/i.test(message)) {
    return new SandboxError(
      `Docker has no free address range for another network (while ${doing}): its default pools hold about 30 networks and other networks use them all; remove unused ones with "docker network prune", then run again`,
    );
  }
  if (/Pool overlaps with other one on this address space|overlaps with/i.test(message)) {
    return new SandboxError(
      `another network on the Docker engine uses the addresses perstack chose (while ${doing}); run again, or set PERSTACK_SUBNET_POOL to a range no other network uses`,
    );
  }
  if ((match = /bind source path does not exist: (\S+)|invalid mount config[^:]*: .*?(\/\S*)/i.exec(message))) {
    const path = match[1] ?? match[2] ?? "a path";
    return new SandboxError(
      `the Docker engine cannot see ${path} (while ${doing}): it runs on another machine or in a VM that does not share that path; share it with the engine (Docker Desktop: Settings > Resources > File sharing), or run where the engine is`,
    );
  }
  if ((match = /Range of CPUs is from [\d.]+ to ([\d.]+)/i.exec(message))) {
    return new SandboxError(`the Docker engine has only ${Number(match[1])} CPUs, fewer than the sandbox asks for (while ${doing}); pass --cpus ${Number(match[1])} or less`);
  }
  if (/Minimum memory limit|memory limit.*(too low|less than)/i.test(message)) {
    return new SandboxError(`the Docker engine refused the sandbox's memory limit as too low (while ${doing}); pass a larger --memory, e.g. --memory 1g`);
  }
  if (/cannot allocate memory|out of memory/i.test(message)) {
    return new SandboxError(
      `the Docker host is out of memory (while ${doing}); let fewer runs share it (PERSTACK_MAX_CONCURRENT_RUNS) or give the agent less (--memory), then run again`,
    );
  }
  if (status === 404) {
    if ((match = /No such image:\s*(\S+)/i.exec(message))) {
      return new SandboxError(`the image ${match[1]} is no longer in the Docker engine (removed while ${doing}?); run again, and perstack builds it again`);
    }
    if ((match = /No such container:\s*(\S+)/i.exec(message))) {
      return new SandboxError(`the container ${match[1]} disappeared while ${doing}: something else removed it (docker rm, docker system prune); run again`);
    }
    if ((match = /network (\S+) not found|No such network:\s*(\S+)/i.exec(message))) {
      return new SandboxError(`the network ${match[1] ?? match[2]} disappeared while ${doing}: something else removed it (docker network rm or prune); run again`);
    }
    if (/no such volume/i.test(message)) {
      return new SandboxError(`a volume of the run disappeared while ${doing}: something else removed it (docker volume rm or prune); run again`);
    }
    return new SandboxError(`something the run uses was removed from the Docker engine while ${doing}; run again`);
  }
  if (status === 409) {
    if ((match = /container name "\/?([^"]+)" is already in use/i.exec(message))) {
      return new SandboxError(
        `a container named ${match[1]} already exists on the Docker engine (while ${doing}); it is left from an earlier run: remove it with "docker rm -f ${match[1]}", then run again`,
      );
    }
    if ((match = /network with name (\S+) already exists/i.exec(message))) {
      return new SandboxError(
        `a network named ${match[1]} already exists on the Docker engine (while ${doing}); it is left from an earlier run: remove it with "docker network rm ${match[1]}", then run again`,
      );
    }
    if ((match = /[Cc]ontainer (\S+) is (not running|paused|restarting)/.exec(message))) {
      return new SandboxError(`a container of the run stopped unexpectedly (it is ${match[2]}) while ${doing}; run again`);
    }
    return new SandboxError(`the Docker engine refused ${doing} because something is in the way (${clip(message)}); run again`);
  }
  if (/OCI runtime|failed to create shim|starting container process|runc/i.test(message)) {
    return new SandboxError(
      `the container runtime could not start a container (while ${doing}): ${clip(message)}; check the engine (docker info), then run again`,
    );
  }
  if (status >= 500) {
    return new SandboxError(`the Docker engine failed while ${doing} (HTTP ${status}: ${clip(message)}); run again, and check the engine (docker info) if it keeps failing`);
  }
  return new SandboxError(`the Docker engine refused ${doing} (HTTP ${status}: ${clip(message)}); this is likely a perstack bug: run again with --verbose and report it`);
}
