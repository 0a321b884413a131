import type Docker from "dockerode";
import { describe, expect, it } from "vitest";
import { removalCommands, SandboxResources } from "../../../src/sandbox/sandbox-resources.js";
import * as errors from "../../../src/errors.js";

function handle(log: string[], name: string, fail = false) {
  return {
    remove: async () => {
      log.push(name);
      if (fail) throw Object.assign(new Error("engine says no"), { statusCode: 500 });
    },
  };
}

describe("SandboxResources", () => {
  it("removes containers, then volumes, then networks, and keeps listing what failed", async () => {
    const log: string[] = [];
    const docker = { getVolume: (name: string) => handle(log, `volume ${name}`) } as unknown as Docker;
    const resources = new SandboxResources(docker);
    resources.network("net-a", handle(log, "network net-a") as unknown as Docker.Network);
    resources.container("proxy", handle(log, "container proxy") as unknown as Docker.Container);
    resources.volume("ws");
    resources.container("agent", handle(log, "container agent", true) as unknown as Docker.Container);
    await resources.removeAll();
    expect(log).toEqual(["container agent", "container proxy", "volume ws", "network net-a"]);
    expect(resources.remaining()).toEqual([{ kind: "container", name: "agent" }]);
    expect(removalCommands(resources.remaining())).toEqual(["docker rm -f agent"]);
  });

  it("removes only what came after a mark (a warm shell given up), its claim last, and keeps the rest", async () => {
    const log: string[] = [];
    const resources = new SandboxResources({} as Docker);
    resources.slot("perstack-slot-7", handle(log, "slot") as unknown as Docker.Container);
    const mark = resources.mark();
    resources.claim("shell-claim", handle(log, "claim") as unknown as Docker.Container);
    resources.container("proxy", handle(log, "container proxy") as unknown as Docker.Container);
    resources.network("shell-net", handle(log, "network shell-net") as unknown as Docker.Network);
    resources.container("agent", handle(log, "container agent") as unknown as Docker.Container);
    await resources.removeAfter(mark);
    expect(log).toEqual(["container agent", "container proxy", "network shell-net", "claim"]);
    expect(resources.remaining()).toEqual([{ kind: "container", name: "perstack-slot-7" }]);
    // What removeAll removed meanwhile is not taken out of the list twice.
    resources.container("own-proxy", handle(log, "container own-proxy") as unknown as Docker.Container);
    await Promise.all([resources.removeAll(), resources.removeAfter(mark)]);
    expect(resources.remaining()).toEqual([]);
  });

  it("releases the run's slot last, after the networks, whatever the order they came in", async () => {
    const log: string[] = [];
    const resources = new SandboxResources({} as Docker);
    resources.slot("perstack-slot-7", handle(log, "slot") as unknown as Docker.Container);
    resources.network("net-a", handle(log, "network net-a") as unknown as Docker.Network);
    resources.network("net-b", handle(log, "network net-b") as unknown as Docker.Network);
    resources.container("proxy", handle(log, "container proxy") as unknown as Docker.Container);
    await resources.removeAll();
    expect(log).toEqual(["container proxy", "network net-b", "network net-a", "slot"]);
    expect(resources.remaining()).toEqual([]);
  });

  it("a second removeAll while one is under way joins it", async () => {
    let release: () => void = () => {};
    const slow = { remove: () => new Promise<void>((resolve) => (release = resolve)) };
    const resources = new SandboxResources({} as Docker);
    resources.container("agent", slow as unknown as Docker.Container);
    const first = resources.removeAll();
    const second = resources.removeAll();
    expect(resources.remaining()).toHaveLength(1);
    release();
    await Promise.all([first, second]);
    expect(resources.remaining()).toEqual([]);
  });

  it("names exactly what is left, one command per kind", () => {
    expect(removalCommands([
      { kind: "network", name: "n1" },
      { kind: "container", name: "c1" },
      { kind: "volume", name: "v1" },
      { kind: "container", name: "c2" },
    ])).toEqual(["docker rm -f c1 c2", "docker volume rm v1", "docker network rm n1"]);
  });
});

describe("exit codes of errors", () => {
  it("2 for bad input only, 1 for everything that failed around it", () => {
    const badInput = [errors.ConfigNotFoundError, errors.ConfigSyntaxError, errors.ConfigSchemaError, errors.UnknownExpertError, errors.UnknownRuntimeError,
      errors.RuntimeNotAvailableError, errors.UnsupportedConfigError, errors.MissingEnvError, errors.InvalidOptionError, errors.JobNotFoundError,
      errors.CheckpointNotFoundError, errors.CannotContinueError];
    const failures = [errors.DockerUnavailableError, errors.ImageBuildError, errors.SandboxError, errors.BootstrapPrerequisiteError, errors.WorkspaceCopyError,
      errors.EngineDiskFullError, errors.SubnetPoolExhaustedError];
    for (const type of badInput) expect(new type("x").exitCode, type.name).toBe(2);
    for (const type of failures) expect(new type("x").exitCode, type.name).toBe(1);
  });
});
