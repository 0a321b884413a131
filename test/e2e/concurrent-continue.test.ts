// Issue 13: two `--continue` of one job at once. Exactly one proceeds; the other is refused with a clear message and
// exit code 2 before it starts anything, and job.json holds the one continuation, not a mix of both.
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."writer"]
description = "Answers"
instruction = "Do as asked."
`;

describe.skipIf(!docker)("concurrent invocations on one job", () => {
  const suite = fakeModelSuite(docker!, "perstack-continue-");

  it("two --continue at once: exactly one proceeds, the other is refused by name, job.json has the one", async () => {
    await suite.fake.script([{ text: "First answer." }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const first = await runCli(["run", "writer", "Say something"], { cwd: ws, env: keyEnv() });
    expect(first.exitCode, first.all).toBe(0);
    const [before] = readJobs(ws);

    // The continued conversation holds one assistant turn: from turn 1 on, a tool call that takes a few seconds.
    await suite.fake.script([{ text: "unused" }, { toolUse: [{ name: "exec", input: { command: "sleep", args: ["3"] } }] }, { text: "Continued." }]);
    const results = await Promise.all(["Go on, A", "Go on, B"].map((query) => runCli(["run", "writer", "--continue", query], { cwd: ws, env: keyEnv(), timeoutMs: 120_000 })));
    const proceeded = results.filter((r) => r.exitCode === 0);
    const refused = results.filter((r) => r.exitCode !== 0);
    expect(proceeded, results.map((r) => r.all).join("\n---\n")).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.exitCode, refused[0]!.all).toBe(2);
    expect(refused[0]!.stderr.trim()).toMatch(
      new RegExp(`^perstack: job ${before!.jobId} (is in use by perstack process \\d+ on .*; wait until it ends, then run again|was moved on by another perstack process while this one prepared to continue it; run again to continue from where it is now)$`),
    );
    const [after] = readJobs(ws);
    expect(after!.runIds).toHaveLength(2);
    expect(after!.job).toMatchObject({ status: "completed", totalSteps: 1 + 2 });
    expect(proceeded[0]!.stdout).toContain("Continued.");
  }, 180_000);
});
