// Issue 13: the proxy or the provider gateway dies while the agent runs. The run notices at once (not when the
// agent has retried until its deadline), stops the agent, and ends stoppedByError with an error that names the
// sidecar; what was collected stays, and nothing is left on the engine. The sidecar is killed from outside, as the
// kernel's OOM killer or an operator would.
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."writer"]
description = "Waits"
instruction = "Do as asked."
`;

describe.skipIf(!docker)("a sidecar that dies mid-run", () => {
  const suite = fakeModelSuite(docker!, "perstack-sidecar-");

  it.each([
    ["proxy", "ProxyStopped", /proxy \(squid\) stopped during the run/],
    ["gateway", "GatewayStopped", /provider gateway stopped during the run/],
  ] as const)("the %s is killed: the run ends within 10 s, stoppedByError naming it, its events kept", async (role, name, message) => {
    // A tool call that would run for a minute: the sidecar dies while it does.
    await suite.fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["60"], timeout: 120000 } }] }, { text: "never" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const child = runCli(["run", "writer", "wait a minute", "--json"], { cwd: ws, env: keyEnv(), timeoutMs: 120_000 });
    const jobId = await new Promise<string>((resolve) => {
      child.stdout!.on("data", (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line.includes('"callTools"')) resolve((JSON.parse(line) as { jobId: string }).jobId);
      });
    });
    const [sidecar] = await docker!.listContainers({ filters: { label: [`perstack.job=${jobId}`, `perstack.role=${role}`] } });
    expect(sidecar, `the run's ${role}`).toBeDefined();
    const killedAt = Date.now();
    await docker!.getContainer(sidecar!.Id).kill({ signal: "SIGKILL" });
    const result = await child;
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(result.exitCode, result.all).toBe(1);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    const stop = job!.events.find((e) => e.type === "stopRunByError") as { error?: { name: string; message: string } } | undefined;
    expect(stop?.error?.name).toBe(name);
    expect(stop?.error?.message).toMatch(message);
    // What came before the failure is kept.
    expect(job!.events.some((e) => e.type === "callTools")).toBe(true);
    expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);
  }, 180_000);
});
