import { describe, expect, it } from "vitest";
import { engineLoss } from "../../../src/sandbox/engine-loss.js";

const facts = { boundMs: 60_000, where: "unix:///var/run/docker.sock", left: [], removal: [] };

describe("engineLoss", () => {
  it("an engine that came back and let the sandbox go: EngineRestarted, the record kept, the sandbox removed", () => {
    const loss = engineLoss({ ...facts, back: true });
    expect(loss.name).toBe("EngineRestarted");
    expect(loss.message).toMatch(/^the Docker engine restarted during the run/);
    expect(loss.message).toMatch(/what was collected is kept, and the sandbox was removed once the engine answered again/);
    expect(loss.message).toMatch(/continue the job$/);
  });

  it("an engine that came back but kept part of the sandbox: names it, with the commands that remove it", () => {
    const loss = engineLoss({ ...facts, back: true, left: [{ kind: "network", name: "perstack-x-internal" }], removal: ["docker network rm perstack-x-internal"] });
    expect(loss.name).toBe("EngineRestarted");
    expect(loss.message).toMatch(/could not remove network perstack-x-internal: remove with docker network rm perstack-x-internal/);
    expect(loss.message).not.toMatch(/sandbox was removed/);
  });

  it("an engine that did not come back: EngineStopped, where it is, how long the run waited, what is left, containers first", () => {
    const loss = engineLoss({
      ...facts,
      back: false,
      left: [
        { kind: "network", name: "perstack-x-egress" },
        { kind: "container", name: "perstack-x-agent" },
      ],
      removal: ["docker rm -f perstack-x-agent", "docker network rm perstack-x-egress"],
    });
    expect(loss.name).toBe("EngineStopped");
    expect(loss.message).toMatch(/^the Docker engine at unix:\/\/\/var\/run\/docker\.sock stopped during the run and did not answer again within 60 s/);
    expect(loss.message).toMatch(/Left on the engine: container perstack-x-agent, network perstack-x-egress; once it runs again, the next perstack command removes them/);
    expect(loss.message).toMatch(/docker rm -f perstack-x-agent && docker network rm perstack-x-egress/);
    expect(loss.message).toMatch(/Start the engine \(docker info must answer\), then continue the job$/);
  });

  it("is one line", () => {
    for (const back of [true, false]) expect(engineLoss({ ...facts, back }).message).not.toMatch(/\n/);
  });
});
