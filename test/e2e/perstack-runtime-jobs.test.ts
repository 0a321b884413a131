// `perstack run --runtime perstack` jobs of several runs (issue 4, done-when items 3 and 4): a coordinator that
// delegates to two experts in one step, and an interactive tool that stops the job until `--continue-job -i`
// answers it. One fake model container; the children's conversations get their own scripts through forQuery.
import { describe, expect, it } from "vitest";
import { readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { askSkill, fakeModelSuite, keyEnv, mainRequests, perstackToml, reportedUsage, toolResultsIn } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."lead"]
description = "Coordinates"
instruction = "Ask your delegates and combine their answers."
delegates = ["alpha", "@team/beta"]

[experts."alpha"]
description = "Says alpha"
instruction = "Answer with alpha."

[experts."@team/beta"]
description = "Says beta"
instruction = "Answer with beta."

[experts."asker"]
description = "Asks the user"
instruction = "Ask the user for a color, then confirm it."
${askSkill("asker")}
[experts."desk"]
description = "Front desk"
instruction = "Let the asker find out what the user wants."
delegates = ["asker"]
`;

/** Exit code of `perstack run` when the job waits for an interactive answer (src/cli/main.ts EXIT.waitingForInput). */
const WAITING_EXIT = 3;

describe.skipIf(!docker)("perstack runtime: delegation and interactive jobs", () => {
  const suite = fakeModelSuite(docker!, "perstack-jobs-");
  const workspace = () => suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));

  it("a coordinator delegates to two experts in one step: three runs, delegatedBy/delegateTo on disk, both results used", async () => {
    await suite.fake.script([
      { toolUse: [{ name: "alpha", input: { query: "please say alpha" } }, { name: "team__beta", input: { query: "please say beta" } }] },
      { text: "alpha answer", forQuery: "please say alpha" },
      { text: "beta answer", forQuery: "please say beta" },
      { text: "Both said their part." },
    ]);
    const ws = workspace();
    const result = await runCli(["run", "lead", "Get both answers"], { cwd: ws, env: keyEnv(), timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain("Both said their part.");

    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    expect(job!.runIds).toHaveLength(3);

    const stop = job!.checkpoints.find((c) => c.status === "stoppedByDelegate")!;
    expect(stop).toBeDefined();
    expect(stop.expert.key).toBe("lead");
    expect(stop.delegateTo?.map((d) => d.expert.key).sort()).toEqual(["@team/beta", "alpha"]);
    const parentRunId = stop.runId;

    const children = job!.checkpoints.filter((c) => c.runId !== parentRunId);
    expect(new Set(children.map((c) => c.runId)).size).toBe(2);
    expect(new Set(children.map((c) => c.expert.key))).toEqual(new Set(["alpha", "@team/beta"]));
    for (const child of children) {
      expect(child.delegatedBy, child.id).toMatchObject({ runId: parentRunId, checkpointId: stop.id, expert: { key: "lead" } });
    }
    expect(children.filter((c) => c.status === "completed")).toHaveLength(2);
    // Every run has its events and a run-setting.json.
    for (const run of job!.runs) {
      expect(run.events.length, run.runId).toBeGreaterThan(0);
      expect(run.setting, run.runId).toBeDefined();
    }

    const parentFinal = job!.checkpoints.find((c) => c.runId === parentRunId && c.status === "completed")!;
    expect(parentFinal).toBeDefined();

    const requests = await suite.fake.requests();
    expect(mainRequests(requests, "please say alpha")).toHaveLength(1);
    expect(mainRequests(requests, "please say beta")).toHaveLength(1);
    const lead = mainRequests(requests, null);
    expect(lead).toHaveLength(2);
    const results = toolResultsIn(lead[1]).map((r) => r.text);
    expect(results.join("\n")).toContain("alpha answer");
    expect(results.join("\n")).toContain("beta answer");
    // The job's usage covers every run: the coordinator's and both children's generations.
    const reported = reportedUsage(requests);
    expect(job!.job.usage).toMatchObject({ inputTokens: reported.inputTokens, outputTokens: reported.outputTokens });
  }, 900_000);

  it("an interactive tool stops the job with the waiting exit code; --continue-job -i answers it and completes the same job", async () => {
    await suite.fake.script([
      { toolUse: [{ name: "askColor", input: { question: "Which color do you want?" } }] },
      { text: "You chose blue." },
    ]);
    const ws = workspace();
    const first = await runCli(["run", "asker", "Pick a color with me"], { cwd: ws, env: keyEnv() });
    expect(first.exitCode, first.all).toBe(WAITING_EXIT);
    const [waiting] = readJobs(ws);
    expect(waiting!.job.status).toBe("stoppedByInteractiveTool");
    expect(first.all).toContain("Which color do you want?");
    expect(first.all).toContain(`--continue-job ${waiting!.jobId} -i`);

    const second = await runCli(["run", "asker", "--continue-job", waiting!.jobId, "-i", "blue"], { cwd: ws, env: keyEnv() });
    expect(second.exitCode, second.all).toBe(0);
    expect(second.stdout).toContain("You chose blue.");

    const jobs = readJobs(ws);
    expect(jobs).toHaveLength(1);
    const [job] = jobs;
    expect(job!.jobId).toBe(waiting!.jobId);
    expect(job!.job.status).toBe("completed");
    expect(job!.runIds).toHaveLength(2);

    const main = mainRequests(await suite.fake.requests());
    expect(main).toHaveLength(2);
    expect(main[1]!.turn).toBe(1);
    expect(toolResultsIn(main[1]).map((r) => r.text)).toEqual(["blue"]);
    const reported = reportedUsage(main);
    expect(job!.job.usage).toMatchObject({ inputTokens: reported.inputTokens, outputTokens: reported.outputTokens });
  }, 300_000);

  it("a delegate's question stops the whole job; -i resumes the delegate from its checkpoint, then the coordinator", async () => {
    await suite.fake.script([
      { toolUse: [{ name: "asker", input: { query: "Ask for a color" } }] },
      { text: "The user picked blue." },
      { toolUse: [{ name: "askColor", input: { question: "Which color, for the desk?" } }], forQuery: "Ask for a color" },
      { text: "blue it is", forQuery: "Ask for a color" },
    ]);
    const ws = workspace();
    const first = await runCli(["run", "desk", "Find out the color"], { cwd: ws, env: keyEnv() });
    expect(first.exitCode, first.all).toBe(WAITING_EXIT);
    const [waiting] = readJobs(ws);
    expect(waiting!.job.status).toBe("stoppedByInteractiveTool");
    expect(first.all).toContain("asker asks: askColor");
    expect(first.all).toContain("Which color, for the desk?");
    expect(first.all).toContain(`perstack run desk --continue-job ${waiting!.jobId} -i`);

    const second = await runCli(["run", "desk", "--continue-job", waiting!.jobId, "-i", "blue"], { cwd: ws, env: keyEnv() });
    expect(second.exitCode, second.all).toBe(0);
    expect(second.stdout).toContain("The user picked blue.");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    // desk and asker in the first invocation, both resumed in the second.
    expect(job!.runIds).toHaveLength(4);
    const main = mainRequests(await suite.fake.requests());
    const askerResumed = main.find((r) => r.forQuery === "Ask for a color" && r.turn === 1)!;
    expect(toolResultsIn(askerResumed).map((r) => r.text)).toEqual(["blue"]);
    const deskDone = main.filter((r) => (r.forQuery ?? null) === null).at(-1)!;
    expect(toolResultsIn(deskDone).map((r) => r.text)).toEqual(["blue it is"]);
    const reported = reportedUsage(main);
    expect(job!.job.usage).toMatchObject({ inputTokens: reported.inputTokens, outputTokens: reported.outputTokens });
  }, 300_000);
});
