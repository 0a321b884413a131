// Issue 9, done-when 2: Perstack's run flags reach the run, not only the plan, and beat perstack.toml. The built-in
// runtime against the fake model: --max-steps stops the job, --job-id names it, --env-path supplies the key,
// --max-retries bounds the attempts.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { type FakeStep } from "../support/fake-model-container.js";
import { fakeModelSuite, mainRequests, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."worker"]
description = "Works"
instruction = "Do the work."
`;

describe.skipIf(!docker)("perstack run: Perstack's flags reach the run", () => {
  const suite = fakeModelSuite(docker!, "perstack-flags-");

  it("--max-steps beats maxSteps, --job-id names the job, --env-path supplies the key", async () => {
    const health: FakeStep = { toolUse: [{ name: "healthCheck", input: {} }] };
    await suite.fake.script([health, health, health, { text: "never" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0\nmaxSteps = 50\nenvPath = [\".env.none\"]", experts: EXPERTS }));
    writeFileSync(join(ws, "keys.env"), "ANTHROPIC_API_KEY=fake-key-from-env-path\n");
    // No key in the environment: only --env-path has it.
    const result = await runCli(["run", "worker", "Loop", "--max-steps", "1", "--job-id", "nightly-7", "--env-path", "keys.env"], { cwd: ws, env: { ANTHROPIC_API_KEY: undefined } });
    expect(result.exitCode, result.all).toBe(1);
    expect(existsSync(join(ws, "perstack", "jobs", "nightly-7", "job.json"))).toBe(true);
    const [job] = readJobs(ws);
    expect(job!.job.id).toBe("nightly-7");
    expect(job!.job.status).toBe("stoppedByMaxSteps");
    expect(job!.job.maxSteps).toBe(1);
    expect(mainRequests(await suite.fake.requests())).toHaveLength(1);

    // The id is taken now: a second run with it is bad input, and nothing starts.
    const again = await runCli(["run", "worker", "Loop", "--job-id", "nightly-7", "--env-path", "keys.env"], { cwd: ws, env: { ANTHROPIC_API_KEY: undefined } });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain("--job-id nightly-7: that job already exists");
  }, 600_000);

  it("--max-retries 0 beats maxRetries = 3: one attempt at a failing model, then stoppedByError", async () => {
    await suite.fake.script([{ error: { status: 500, type: "api_error", message: "upstream down" } }, { text: "never" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 3", experts: EXPERTS }));
    const result = await runCli(["run", "worker", "Answer", "--max-retries", "0"], { cwd: ws, env: { ANTHROPIC_API_KEY: "fake-key-e2e" } });
    expect(result.exitCode, result.all).toBe(1);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    expect(job!.events.filter((e) => e.type === "retry")).toHaveLength(0);
    expect(mainRequests(await suite.fake.requests())).toHaveLength(1);
  }, 600_000);

  it("copy mode: the agent owns its workspace volume, as the default user (the image's owner) and as another --user", async () => {
    for (const [user, uid] of [[undefined, "1000"], ["2000:2000", "2000"]] as const) {
      const probe = `probe as ${uid}`;
      await suite.fake.script([
        { forQuery: probe, toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "id -u > whoami.txt && stat -c %u . > owner.txt"], timeout: 60000 } }] },
        { forQuery: probe, text: "probed" },
      ]);
      const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
      const result = await runCli(["run", "worker", probe, "--workspace-mode", "copy", ...(user ? ["--user", user] : [])], { cwd: ws, env: { ANTHROPIC_API_KEY: "fake-key-e2e" } });
      expect(result.exitCode, result.all).toBe(0);
      expect(readFileSync(join(ws, "whoami.txt"), "utf8").trim(), user ?? "default").toBe(uid);
      expect(readFileSync(join(ws, "owner.txt"), "utf8").trim(), user ?? "default").toBe(uid);
    }
  }, 600_000);
});
