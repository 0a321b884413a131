// Docker failures, in the shapes dockerode reports them (recorded from the engine: statusCode, json.message and the
// message dockerode builds), become messages that say what happened and what to do, never the engine's wording.
import { describe, expect, it } from "vitest";
import { DockerUnavailableError, EngineDiskFullError, InvalidOptionError, SandboxError } from "../../../src/errors.js";
import { explainDockerError, isDockerFailure } from "../../../src/sandbox/docker-errors.js";

/** An error as dockerode makes it from an engine reply. */
function engineReply(statusCode: number, reason: string, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${statusCode}) ${reason} - ${message} `), { statusCode, reason, json: { message } });
}

function socketError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Fragments of Docker's own wording that must never reach the user. */
const RAW = [/HTTP code/, /no such container -/i, /non-overlapping IPv4 address pool/, /Conflict\. The container name/, /Error response from daemon/];

const cases: Array<{ name: string; error: Error; type: new (message: string) => Error; says: RegExp[] }> = [
  {
    name: "engine not running",
    error: socketError("ECONNREFUSED", "connect ECONNREFUSED /var/run/docker.sock"),
    type: DockerUnavailableError,
    says: [/no Docker engine answers at \/var\/run\/docker\.sock/, /start Docker, or set DOCKER_HOST/],
  },
  {
    name: "no socket",
    error: socketError("ENOENT", "connect ENOENT /var/run/docker.sock"),
    type: DockerUnavailableError,
    says: [/no Docker engine answers/],
  },
  {
    name: "no permission on the socket",
    error: socketError("EACCES", "connect EACCES /var/run/docker.sock"),
    type: DockerUnavailableError,
    says: [/no permission to use the Docker engine/, /docker group/],
  },
  {
    name: "connection lost",
    error: socketError("ECONNRESET", "socket hang up"),
    type: DockerUnavailableError,
    says: [/lost the connection to the Docker engine/, /docker info/],
  },
  {
    name: "image removed",
    error: engineReply(404, "no such container", "No such image: perstack/agent-perstack:0123456789abcdef"),
    type: SandboxError,
    says: [/the image perstack\/agent-perstack:0123456789abcdef is no longer in the Docker engine/, /run again/],
  },
  {
    name: "container removed behind our back",
    error: engineReply(404, "no such container", "No such container: perstack-abc-agent"),
    type: SandboxError,
    says: [/the container perstack-abc-agent disappeared while starting the agent/, /docker rm, docker system prune/],
  },
  {
    name: "network removed behind our back",
    error: engineReply(404, "no such network", "network perstack-abc-internal not found"),
    type: SandboxError,
    says: [/the network perstack-abc-internal disappeared/],
  },
  {
    name: "name conflict",
    error: engineReply(409, "unexpected", 'Conflict. The container name "/perstack-abc-agent" is already in use by container "f00". You have to remove (or rename) that container to be able to reuse that name.'),
    type: SandboxError,
    says: [/a container named perstack-abc-agent already exists/, /docker rm -f perstack-abc-agent/],
  },
  {
    name: "network name conflict",
    error: engineReply(409, "unexpected", "network with name perstack-abc-egress already exists"),
    type: SandboxError,
    says: [/a network named perstack-abc-egress already exists/, /docker network rm perstack-abc-egress/],
  },
  {
    name: "Docker's default pools are used up",
    error: engineReply(404, "unexpected", "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"),
    type: SandboxError,
    says: [/Docker has no free address range for another network/, /docker network prune/],
  },
  {
    name: "subnet taken by another network",
    error: engineReply(403, "unexpected", "Pool overlaps with other one on this address space"),
    type: SandboxError,
    says: [/another network on the Docker engine uses the addresses/, /PERSTACK_SUBNET_POOL/],
  },
  {
    name: "disk full",
    error: engineReply(500, "server error", "write /var/lib/docker/tmp/GetImageBlob123: no space left on device"),
    type: EngineDiskFullError,
    says: [/the Docker engine's disk is full/, /perstack images prune/],
  },
  {
    name: "bind source missing (remote engine)",
    error: engineReply(400, "bad parameter", 'invalid mount config for type "bind": bind source path does not exist: /home/me/project'),
    type: SandboxError,
    says: [/cannot see \/home\/me\/project/, /File sharing/],
  },
  {
    name: "more CPUs than the engine has",
    error: engineReply(400, "bad parameter", "Range of CPUs is from 0.01 to 1.00, as there are only 1 CPUs available"),
    type: SandboxError,
    says: [/has only 1 CPUs/, /--cpus 1 or less/],
  },
  {
    name: "container runtime failure",
    error: engineReply(500, "server error", "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process"),
    type: SandboxError,
    says: [/the container runtime could not start a container \(while starting the agent\)/, /docker info/],
  },
  {
    name: "anything else from the engine",
    error: engineReply(500, "server error", "something odd"),
    type: SandboxError,
    says: [/the Docker engine failed while starting the agent \(HTTP 500: something odd\)/, /run again/],
  },
];

describe("explainDockerError", () => {
  it.each(cases)("$name", ({ error, type, says }) => {
    const explained = explainDockerError(error, "starting the agent", {});
    expect(explained).toBeInstanceOf(type);
    for (const pattern of says) expect(explained.message).toMatch(pattern);
    for (const raw of RAW) expect(explained.message).not.toMatch(raw);
    expect(explained.message).not.toContain("\n");
  });

  it("names DOCKER_HOST when it is set", () => {
    const explained = explainDockerError(socketError("ECONNREFUSED", "connect ECONNREFUSED"), "creating the run's networks", { DOCKER_HOST: "tcp://10.0.0.5:2375" });
    expect(explained.message).toContain("tcp://10.0.0.5:2375");
  });

  it("leaves perstack's own errors and other errors alone", () => {
    const own = new InvalidOptionError("--memory: give a size");
    expect(explainDockerError(own, "x")).toBe(own);
    const plain = new Error("disk read failed");
    expect(explainDockerError(plain, "x")).toBe(plain);
    expect(isDockerFailure(plain)).toBe(false);
    expect(isDockerFailure(own)).toBe(false);
    expect(isDockerFailure(engineReply(404, "no such container", "No such container: x"))).toBe(true);
    expect(isDockerFailure(socketError("ECONNREFUSED", "x"))).toBe(true);
  });
});
