// `perstack log` and `perstack jobs` on real jobs (issue 9, done-when items 3 and 4). One fake model container and
// one workspace hold four jobs, made once: a built-in runtime job of two runs (a retry, a base-skill write, a blocked
// request, a failing tool call, a delegation), one waiting for an interactive answer, one stopped by an error, and a
// Claude Code job. Every log option is then checked for what it selects against what is on disk.
import { beforeAll, describe, expect, it } from "vitest";
import { readJobs, runCli, type EventOnDisk, type JobOnDisk } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { askSkill, fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";

const docker = await requireDocker();

const EXPERTS = `[experts."lead"]
description = "Coordinates"
instruction = "Write the notes, then let the helper summarize them."
delegates = ["helper"]

[experts."helper"]
description = "Summarizes"
instruction = "Read the notes and summarize them."

[experts."asker"]
description = "Asks the user"
instruction = "Ask the user for a color."
${askSkill("asker")}
[experts."solo"]
description = "Works alone"
instruction = "Do what you are asked."
`;

const HELPER_QUERY = "Summarize notes.txt";
const BLOCKED = "blocked.example.com";
const RUN_TIMEOUT = 900_000;

type LogJson = {
  job: { id: string; status: string; runtime: string; totalSteps: number; usage: Record<string, number>; startedAt: number; finishedAt?: number };
  events: Array<EventOnDisk & { id: string; type: string; runId: string; timestamp: number; stepNumber?: number }>;
  summary: Record<string, unknown> & {
    scope: string;
    status: string;
    steps: number;
    usage: Record<string, number>;
    toolCalls: Record<string, number>;
    errors: { stoppedByError: number; retries: number; failedToolResults: number; sandboxWarnings: number };
    blockedEgress: { count: number; domains: string[] };
  };
  checkpoint?: { id: string; runId: string; messages: unknown[] };
  checkpoints?: Array<{ id: string; runId: string; status: string }>;
  isLatestJob?: boolean;
  storagePath: string;
  totalEventsBeforeLimit: number;
  matchedAfterPagination: number;
};

describe.skipIf(!docker)("perstack log and perstack jobs on real jobs", () => {
  const suite = fakeModelSuite(docker!, "perstack-log-");
  let ws: string;
  /** The jobs by what they are. */
  const jobs: Record<"lead" | "waiting" | "failed" | "claude", JobOnDisk> = {} as never;

  async function runJob(args: string[], script: Parameters<typeof suite.fake.script>[0], exitCode: number): Promise<JobOnDisk> {
    await suite.fake.script(script);
    const before = new Set(readJobs(ws).map((j) => j.jobId));
    const result = await runCli(["run", ...args], { cwd: ws, env: keyEnv(), timeoutMs: RUN_TIMEOUT });
    expect(result.exitCode, result.all).toBe(exitCode);
    const made = readJobs(ws).filter((j) => !before.has(j.jobId));
    expect(made, result.all).toHaveLength(1);
    return made[0]!;
  }

  beforeAll(async () => {
    ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 2", experts: EXPERTS }));
    jobs.lead = await runJob(
      ["lead", "Write the notes and have them summarized"],
      [
        { error: { status: 429, type: "rate_limit_error", message: "slow down" }, times: 1 },
        {
          toolUse: [
            { name: "writeTextFile", input: { path: "notes.txt", text: "alpha beta" } },
            { name: "exec", input: { command: "curl", args: ["-s", "-o", "/dev/null", "-w", "%{http_code}", `http://${BLOCKED}/`] } },
          ],
        },
        { toolUse: [{ name: "readTextFile", input: { path: "missing.txt" } }] },
        { toolUse: [{ name: "helper", input: { query: HELPER_QUERY } }] },
        { toolUse: [{ name: "readTextFile", input: { path: "notes.txt" } }], forQuery: HELPER_QUERY },
        { text: "The notes say alpha beta.", forQuery: HELPER_QUERY },
        { text: "All done: notes written and summarized." },
      ],
      0,
    );
    jobs.waiting = await runJob(["asker", "Pick a color with me"], [{ toolUse: [{ name: "askColor", input: { question: "Which color?" } }] }], 3);
    jobs.failed = await runJob(["solo", "Fail please"], [{ error: { status: 400, type: "invalid_request_error", message: "scripted bad request" } }], 1);
    jobs.claude = await runJob(
      ["solo", "Write cc.txt", "--runtime", "claude-code"],
      [
        { text: "Writing it.", toolUse: [{ name: "Write", input: { file_path: "/workspace/cc.txt", content: "from claude\n" } }] },
        { toolUse: [{ name: "Bash", input: { command: `curl -s -o /dev/null -w '%{http_code}' http://${BLOCKED}/`, description: "probe" } }] },
        { text: "Claude is done." },
      ],
      0,
    );
  }, 4 * RUN_TIMEOUT);

  async function log(args: string[]): Promise<LogJson> {
    const result = await runCli(["log", ...args, "--json"], { cwd: ws });
    expect(result.exitCode, result.all).toBe(0);
    return JSON.parse(result.stdout) as LogJson;
  }

  async function logText(args: string[]): Promise<string> {
    const result = await runCli(["log", ...args], { cwd: ws });
    expect(result.exitCode, result.all).toBe(0);
    return result.stdout;
  }

  /** Every event of the lead job, in the order `perstack log` shows them. */
  const allLeadEvents = async () => (await log(["--job", jobs.lead.jobId, "--take", "0"])).events;
  const count = (events: EventOnDisk[], keep: (e: EventOnDisk) => boolean) => events.filter(keep).length;

  it("no options: the latest job, marked as such", async () => {
    const out = await log([]);
    expect(out.job.id).toBe(jobs.claude.jobId);
    expect(out.isLatestJob).toBe(true);
    expect(out.storagePath).toBe(`${ws}/perstack`);
    const text = await logText([]);
    expect(text.split("\n")[0]).toMatch(new RegExp(`^Job ${jobs.claude.jobId} · solo · claude-code · completed · `));
    expect(text).toContain("(the latest job: pick another with --job <jobId>; list them with `perstack jobs`)");
  });

  it("--job: every run of the job merged by time, every event counted, the job's checkpoints listed", async () => {
    const out = await log(["--job", jobs.lead.jobId, "--take", "0"]);
    expect(out.isLatestJob).toBeUndefined();
    expect(jobs.lead.runIds).toHaveLength(2);
    expect(out.events).toHaveLength(jobs.lead.allEvents.length);
    expect(out.totalEventsBeforeLimit).toBe(jobs.lead.allEvents.length);
    expect(new Set(out.events.map((e) => e.runId))).toEqual(new Set(jobs.lead.runIds));
    // Each run's events keep the order they were recorded in (a proxy decision is stamped when the request was
    // made but recorded when squid's log line arrives, so a run's file is not strictly sorted by timestamp).
    for (const run of jobs.lead.runs) {
      expect(out.events.filter((e) => e.runId === run.runId).map((e) => e.id)).toEqual(run.events.map((e) => e.id));
    }
    expect(out.checkpoints?.map((c) => c.id).sort()).toEqual(jobs.lead.checkpoints.map((c) => c.id).sort());
    expect(out.summary.malformedLines).toBe(0);
  });

  it("--take (default 100), --offset and --take 0 page the matching events", async () => {
    const all = await allLeadEvents();
    const byDefault = await log(["--job", jobs.lead.jobId]);
    expect(byDefault.events.map((e) => e.id)).toEqual(all.slice(0, 100).map((e) => e.id));
    const page = await log(["--job", jobs.lead.jobId, "--take", "3", "--offset", "2"]);
    expect(page.events.map((e) => e.id)).toEqual(all.slice(2, 5).map((e) => e.id));
    expect([page.totalEventsBeforeLimit, page.matchedAfterPagination]).toEqual([all.length, 3]);
    const text = await logText(["--job", jobs.lead.jobId, "--take", "3", "--offset", "2"]);
    expect(text).toContain(`showing 3 of ${all.length} matching events: page with --offset and --take, or --take 0 for all`);
  });

  it("--run: that run's events only, with the run's own summary; its job is found without --job", async () => {
    const helperRun = jobs.lead.checkpoints.find((c) => c.expert.key === "helper")!.runId;
    const out = await log(["--run", helperRun, "--take", "0"]);
    expect(out.job.id).toBe(jobs.lead.jobId);
    expect(out.events.length).toBe(jobs.lead.runs.find((r) => r.runId === helperRun)!.events.length);
    expect(out.events.every((e) => e.runId === helperRun)).toBe(true);
    expect(out.summary).toMatchObject({ scope: "run", runId: helperRun, status: "completed", toolCalls: { readTextFile: 1 } });
  });

  it("--checkpoint: the checkpoint and the events of its run; --messages shows its history", async () => {
    const final = jobs.lead.checkpoints.find((c) => c.expert.key === "helper" && c.status === "completed")!;
    const out = await log(["--job", jobs.lead.jobId, "--checkpoint", final.id, "--take", "0"]);
    expect(out.checkpoint?.id).toBe(final.id);
    expect(out.checkpoint?.messages.length).toBe(final.messages.length);
    expect(out.events.every((e) => e.runId === final.runId)).toBe(true);
    const messages = await logText(["--job", jobs.lead.jobId, "--checkpoint", final.id, "--messages"]);
    expect(messages).toContain(`Checkpoint ${final.id} · run ${final.runId} · helper · step 2 · completed`);
    expect(messages).toContain(`Messages (${final.messages.length}):`);
    expect(messages).toMatch(/\n +\d+ +user +.*Summarize notes\.txt/);
    expect(messages).toContain("→ readTextFile {\"path\":\"notes.txt\"}");
    expect(messages).toContain("The notes say alpha beta.");
    expect(messages).not.toContain("startGeneration");
  });

  it("--step in each of Perstack's forms selects exactly those steps", async () => {
    const all = jobs.lead.allEvents;
    const cases: Array<[string, (step: number) => boolean]> = [
      ["2", (s) => s === 2],
      [">2", (s) => s > 2],
      [">=2", (s) => s >= 2],
      ["<2", (s) => s < 2],
      ["<=2", (s) => s <= 2],
      ["1-2", (s) => s >= 1 && s <= 2],
    ];
    for (const [form, holds] of cases) {
      const out = await log(["--job", jobs.lead.jobId, "--step", form, "--take", "0"]);
      expect(out.events.length, form).toBe(count(all, (e) => typeof e.stepNumber === "number" && holds(e.stepNumber)));
      expect(out.events.length, form).toBeGreaterThan(0);
      expect(out.events.every((e) => typeof e.stepNumber === "number" && holds(e.stepNumber)), form).toBe(true);
    }
  });

  it("--type, and the presets --errors, --tools and --delegations, select their event types", async () => {
    const all = jobs.lead.allEvents;
    const cases: Array<[string[], string[]]> = [
      [["--type", "callTools"], ["callTools"]],
      [["--type", "retry,proxyAccess"], ["retry", "proxyAccess"]],
      [["--errors"], ["stopRunByError", "retry", "sandboxWarning"]],
      [["--tools"], ["callTools", "resolveToolResults", "callInteractiveTool"]],
      [["--delegations"], ["callDelegate", "stopRunByDelegate"]],
    ];
    for (const [args, types] of cases) {
      const out = await log(["--job", jobs.lead.jobId, ...args, "--take", "0"]);
      expect(out.events.length, args.join(" ")).toBe(count(all, (e) => types.includes(e.type)));
      expect(out.events.length, args.join(" ")).toBeGreaterThan(0);
    }
    const errors = await log(["--job", jobs.lead.jobId, "--errors"]);
    expect(errors.events.map((e) => e.type)).toEqual(["retry"]);
    expect(String(errors.events[0]!.reason)).toMatch(/429/);
    const delegations = await log(["--job", jobs.lead.jobId, "--delegations"]);
    expect(delegations.events.map((e) => e.type)).toEqual(["callDelegate", "stopRunByDelegate"]);
    expect((delegations.events[0]!.toolCalls as Array<{ toolName: string }>)[0]!.toolName).toBe("helper");
  });

  it("--filter selects by a field path, with [] for any element", async () => {
    const reads = await log(["--job", jobs.lead.jobId, "--filter", '.toolCalls[].toolName == "readTextFile"']);
    expect(reads.events.map((e) => e.type)).toEqual(["callTools", "callTools"]);
    expect(new Set(reads.events.map((e) => e.expertKey))).toEqual(new Set(["lead", "helper"]));
    const blocked = await log(["--job", jobs.lead.jobId, "--filter", `.action == "blocked"`]);
    expect(blocked.events.length).toBeGreaterThan(0);
    expect(blocked.events.every((e) => e.type === "proxyAccess" && e.domain === BLOCKED)).toBe(true);
    const failed = await log(["--job", jobs.lead.jobId, "--filter", ".toolResults[].isError == true"]);
    expect(failed.events).toHaveLength(1);
    expect(JSON.stringify(failed.events[0])).toContain("missing.txt");
    const later = await log(["--job", jobs.lead.jobId, "--filter", ".stepNumber >= 3", "--take", "0"]);
    expect(later.events.length).toBe(count(jobs.lead.allEvents, (e) => typeof e.stepNumber === "number" && e.stepNumber >= 3));
  });

  it("--context adds the events around each match", async () => {
    const all = await allLeadEvents();
    const at = all.findIndex((e) => e.type === "retry");
    const out = await log(["--job", jobs.lead.jobId, "--errors", "--context", "2"]);
    expect(out.events.map((e) => e.id)).toEqual(all.slice(Math.max(0, at - 2), at + 3).map((e) => e.id));
    expect([out.totalEventsBeforeLimit, out.matchedAfterPagination]).toEqual([1, 1]);
  });

  it("--pretty is the same JSON, indented; --verbose shows tool arguments and results in full", async () => {
    const compact = await log(["--job", jobs.lead.jobId]);
    const pretty = await runCli(["log", "--job", jobs.lead.jobId, "--pretty"], { cwd: ws });
    expect(pretty.exitCode).toBe(0);
    expect(pretty.stdout).toContain('\n  "job": {\n');
    expect(JSON.parse(pretty.stdout)).toEqual(compact);
    const plain = await logText(["--job", jobs.lead.jobId, "--tools"]);
    const verbose = await logText(["--job", jobs.lead.jobId, "--tools", "--verbose"]);
    expect(plain).not.toContain('"text": "alpha beta"');
    expect(verbose).toContain('"text": "alpha beta"');
    expect(verbose).toMatch(/✗ readTextFile\n.*missing\.txt/);
  });

  it("--summary: status, steps, tokens, duration, tool calls by name, errors and blocked egress", async () => {
    const { summary, job } = await log(["--job", jobs.lead.jobId, "--summary"]);
    expect(summary).toMatchObject({
      scope: "job",
      status: "completed",
      steps: jobs.lead.job.totalSteps,
      usage: jobs.lead.job.usage,
      runs: 2,
      toolCalls: { writeTextFile: 1, exec: 1, readTextFile: 2, helper: 1 },
      errors: { stoppedByError: 0, retries: 1, failedToolResults: 1, sandboxWarnings: 0 },
    });
    expect(summary.durationMs).toBe(job.finishedAt! - job.startedAt);
    expect(summary.blockedEgress.count).toBeGreaterThan(0);
    expect(summary.blockedEgress.domains).toEqual([BLOCKED]);
    const text = await logText(["--job", jobs.lead.jobId, "--summary"]);
    for (const line of ["  status       completed", `  steps        ${jobs.lead.job.totalSteps}`, "  tool calls   5: readTextFile 2 · exec 1 · helper 1 · writeTextFile 1", `  egress       ${summary.blockedEgress.count} blocked: ${BLOCKED}`]) {
      expect(text.split("\n")).toContain(line);
    }
    expect(text).toMatch(/\n {2}tokens {7}[\d,]+ \(in [\d,]+ · out [\d,]+ · cached [\d,]+ · reasoning [\d,]+\)\n/);
    expect(text).toMatch(/\n {2}errors {7}0 stopped by error · 1 retry · 1 failed tool result · 0 sandbox warnings\n.*retry: .*429/);
  });

  it("the waiting and the failed job: their status, the interactive call, the error", async () => {
    const waiting = await log(["--job", jobs.waiting.jobId, "--summary"]);
    expect(waiting.summary.status).toBe("stoppedByInteractiveTool");
    const asked = await log(["--job", jobs.waiting.jobId, "--type", "callInteractiveTool"]);
    expect(asked.events).toHaveLength(1);
    expect(JSON.stringify(asked.events[0])).toContain("Which color?");
    const failed = await log(["--job", jobs.failed.jobId, "--errors"]);
    expect(failed.summary).toMatchObject({ status: "stoppedByError", errors: { stoppedByError: 1, retries: 0 } });
    expect(failed.events.map((e) => e.type)).toEqual(["stopRunByError"]);
    expect(failed.events[0]!.error).toMatchObject({ statusCode: 400 });
  });

  it("a Claude Code job: its tools under their base-skill names, its blocked request, the same options", async () => {
    const id = jobs.claude.jobId;
    const tools = await log(["--job", id, "--tools"]);
    const calls = tools.events.filter((e) => e.type === "callTools").flatMap((e) => e.toolCalls as Array<{ toolName: string }>);
    expect(calls.map((c) => c.toolName)).toEqual(["Write", "Bash"]);
    const writes = await log(["--job", id, "--filter", '.toolCalls[].normalized.toolName == "writeTextFile"']);
    expect(writes.events).toHaveLength(1);
    const { summary } = await log(["--job", id, "--summary"]);
    expect(summary).toMatchObject({ status: "completed", steps: jobs.claude.job.totalSteps, toolCalls: { writeTextFile: 1, exec: 1 } });
    expect(summary.usage.totalTokens).toBeGreaterThan(0);
    expect(summary.blockedEgress.domains).toContain(BLOCKED);
    const step2 = await log(["--job", id, "--step", "2", "--take", "0"]);
    expect(step2.events.length).toBe(count(jobs.claude.allEvents, (e) => e.stepNumber === 2));
    expect(step2.events.some((e) => e.type === "callTools" && JSON.stringify(e).includes("curl"))).toBe(true);
    const proxy = await log(["--job", id, "--type", "proxyAccess", "--take", "0"]);
    expect(proxy.events.length).toBe(count(jobs.claude.allEvents, (e) => e.type === "proxyAccess"));
  });

  it("bad input is one line and exit code 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--job", "nope"], /^perstack: job nope not found: .* does not exist; list jobs with `perstack jobs`$/],
      [["--filter", "toolName == x"], /^perstack: --filter "toolName == x": start with "\." and a field name/],
      [["--step", "x"], /^perstack: --step "x": give a step \(5\), a bound/],
      [["--type", "callTool"], /^perstack: --type "callTool": not an event type; did you mean callTools\?/],
      [["--take", "-1"], /^perstack: option '--take <n>' argument '-1' is invalid\. give a whole number, 0 or more/],
      [["--run", "ghost"], /^perstack: run "ghost" is in no job in .*; list jobs with `perstack jobs`, then pass --job <jobId>$/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(["log", ...args], { cwd: ws });
      expect(result.exitCode, args.join(" ")).toBe(2);
      expect(result.stderr.trim(), args.join(" ")).toMatch(message);
      expect(result.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
  });

  it("perstack jobs: completed, failed and waiting jobs, newest first, with the command that answers the waiting one", async () => {
    const result = await runCli(["jobs"], { cwd: ws });
    expect(result.exitCode, result.all).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^JOB +EXPERT +RUNTIME +STATUS +STEPS +TOKENS +STARTED +DURATION$/);
    expect(lines.slice(1).map((l) => l.split(/ +/)[0])).toEqual([jobs.claude.jobId, jobs.failed.jobId, jobs.waiting.jobId, jobs.lead.jobId]);
    expect(lines[1]).toMatch(/ solo +claude-code +completed +\d+ +[\d,]+ /);
    expect(lines[2]).toMatch(/ solo +perstack +stoppedByError +\d+ /);
    expect(lines[3]).toMatch(new RegExp(` asker +perstack +stoppedByInteractiveTool .* answer: perstack run asker --continue-job ${jobs.waiting.jobId} -i '<answer>'$`));
    expect(lines[4]).toMatch(new RegExp(` lead +perstack +completed +${jobs.lead.job.totalSteps} `));

    const json = await runCli(["jobs", "--json"], { cwd: ws });
    const listed = JSON.parse(json.stdout) as Array<{ id: string; status: string; runtimes: string[]; totalSteps: number; continueCommand?: string }>;
    expect(listed.map((j) => [j.id, j.status, j.runtimes])).toEqual([
      [jobs.claude.jobId, "completed", ["claude-code"]],
      [jobs.failed.jobId, "stoppedByError", ["perstack"]],
      [jobs.waiting.jobId, "stoppedByInteractiveTool", ["perstack"]],
      [jobs.lead.jobId, "completed", ["perstack"]],
    ]);
    expect(listed.map((j) => j.continueCommand)).toEqual([undefined, undefined, `perstack run asker --continue-job ${jobs.waiting.jobId} -i '<answer>'`, undefined]);
    expect(listed.map((j) => j.totalSteps)).toEqual([jobs.claude.job.totalSteps, jobs.failed.job.totalSteps, jobs.waiting.job.totalSteps, jobs.lead.job.totalSteps]);
  });
});
