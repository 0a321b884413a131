// Issue 13: the Docker engine restarts while the agent runs. The run notices at once (not at --max-duration),
// ends stoppedByError with an error that says the engine restarted, keeps what was collected, and removes its
// sandbox once the engine answers again.
//
// The test owns the engine it restarts (test/support/own-engine.ts): a second dockerd, loaded with only the images
// a run of the built-in runtime needs, copied from the main engine. The fake model runs on the main engine, out of
// the restart's way. Both ways an engine goes down are covered: killed (a crash; it stops the containers it finds
// when it starts again) and stopped (a restart of the service; it stops its containers as it shuts down).
import type { ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { inCI, leftAfterTeardown, requireDocker, rootOnly } from "../support/docker.js";
import { ownEngineTools, startOwnEngine, type OwnEngine } from "../support/own-engine.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();
const root = rootOnly();
const tools = ownEngineTools();
if (!tools.ok && inCI()) throw new Error(`CI=${process.env.CI} runs the engine-restart test: ${tools.reason} (see .ci/run)`);
if (!tools.ok) console.warn(`[skip] engine-restart test: ${tools.reason}`);

const EXPERTS = `[experts."writer"]
description = "Waits"
instruction = "Do as asked."
`;

describe.skipIf(!docker || root.skip || !tools.ok)("the Docker engine restarts mid-run", () => {
  const suite = fakeModelSuite(docker!, "perstack-engine-restart-");
  let engine: OwnEngine | undefined;
  let toml = "";

  beforeAll(async () => {
    root.check();
    // The fake is published on every host address, so the own engine's host-gateway (its bridge's address) reaches it.
    toml = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const refs = await imagesOfARun(toml);
    engine = await startOwnEngine();
    await engine.loadImages(refs);
  }, 600_000);

  afterAll(async () => {
    await engine?.destroy();
  }, 120_000);

  /** The images a run plans (and their base images), built on the main engine if they are not there yet. */
  async function imagesOfARun(toml: string): Promise<string[]> {
    const ws = suite.workspace(toml);
    const dry = await runCli(["run", "writer", "hi", "--dry-run"], { cwd: ws, env: keyEnv(), timeoutMs: 60_000 });
    expect(dry.exitCode, dry.all).toBe(0);
    const plan = JSON.parse(dry.stdout) as { images: Array<{ ref: string; baseImage: string }> };
    const refs = [...new Set(plan.images.flatMap((image) => [image.ref, image.baseImage]))];
    const present = await Promise.all(refs.map((ref) => docker!.getImage(ref).inspect().then(() => true, () => false)));
    if (present.includes(false)) {
      await suite.fake.script([{ text: "built" }]);
      const built = await runCli(["run", "writer", "hi"], { cwd: ws, env: keyEnv(), timeoutMs: 540_000 });
      expect(built.exitCode, built.all).toBe(0);
    }
    return refs;
  }

  it.each([
    ["killed", "SIGKILL"],
    ["stopped", "SIGTERM"],
  ] as const)("the engine is %s and started again: the run ends within 20 s, EngineRestarted, its events kept, nothing left", async (_how, signal) => {
    const own = engine!;
    // A tool call that would run for a minute: the engine goes down while it does.
    await suite.fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["60"], timeout: 120000 } }] }, { text: "never" }]);
    const ws = suite.workspace(toml);
    const child = runCli(["run", "writer", "wait a minute", "--json"], {
      cwd: ws,
      env: { ...keyEnv(), DOCKER_HOST: own.host, PERSTACK_SUBNET_POOL: own.pool },
      timeoutMs: 120_000,
    });
    const jobId = await toolCallOf(child);
    const downAt = Date.now();
    await own.stop(signal);
    await own.start();
    const result = await child;
    expect(Date.now() - downAt).toBeLessThan(20_000);
    expect(result.exitCode, result.all).toBe(1);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    const stop = job!.events.find((e) => e.type === "stopRunByError") as { error?: { name: string; message: string } } | undefined;
    expect(stop?.error?.name, result.all).toBe("EngineRestarted");
    expect(stop?.error?.message).toMatch(/Docker engine restarted during the run/);
    expect(stop?.error?.message).toMatch(/sandbox was removed/);
    // It noticed at once, not when the engine came back.
    const noticed = job!.events.find((e) => e.type === "dockerContainerStatus" && /Docker engine stopped answering/.test(String(e.status)));
    expect(noticed?.timestamp, "the run's notice that the engine went").toBeDefined();
    expect(noticed!.timestamp! - downAt).toBeLessThan(3_000);
    // What came before the restart is kept.
    expect(job!.events.some((e) => e.type === "callTools")).toBe(true);
    expect(await leftAfterTeardown(own.client, jobId)).toEqual([]);
  }, 180_000);
});

/** The job id, once the run's agent has called its tool; fails at once with the run's output if it ends first. */
function toolCallOf(child: ResultPromise<{ reject: false; all: true }>): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let partial = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
    });
    void child.then((result) => reject(new Error(`the run ended before its tool call (exit ${result.exitCode}):\n${result.all}`)));
  });
}
