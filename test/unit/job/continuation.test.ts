import { describe, expect, it } from "vitest";
import { CannotContinueError, InvalidOptionError } from "../../../src/errors.js";
import { answerCommand, checkpointIdToContinue, jobTarget, planContinuation } from "../../../src/job/continuation.js";
import { emptyUsage, type Checkpoint, type Job } from "../../../src/model/perstack.js";

const job = (over: Partial<Job> = {}): Job => ({
  id: "job1",
  status: "completed",
  coordinatorExpertKey: "lead",
  totalSteps: 7,
  usage: emptyUsage(),
  startedAt: 1,
  runtime: "perstack",
  latestCheckpointId: "cp1",
  ...over,
});

const checkpoint = (over: Partial<Checkpoint> = {}): Checkpoint => ({
  id: "cp1",
  jobId: "job1",
  runId: "run1",
  status: "completed",
  stepNumber: 3,
  messages: [],
  expert: { key: "lead", name: "lead", version: "1.0.0" },
  usage: emptyUsage(),
  ...over,
});

const waiting = checkpoint({
  status: "stoppedByInteractiveTool",
  pendingToolCalls: [{ id: "t1", skillName: "ask", toolName: "askUser", args: { question: "which?" } }],
});

describe("jobTarget: the flags alone", () => {
  it("a new job needs a query", () => {
    expect(jobTarget({ query: "q" })).toEqual({ kind: "new", query: "q" });
    expect(() => jobTarget({})).toThrow(InvalidOptionError);
    expect(() => jobTarget({})).toThrow(/missing query/);
  });

  it("--resume-from needs --continue-job", () => {
    expect(() => jobTarget({ resumeFrom: "cp1" })).toThrow(/--resume-from cp1 needs --continue-job <jobId>/);
    expect(() => jobTarget({ continue: true, resumeFrom: "cp1" })).toThrow(/needs --continue-job/);
    expect(jobTarget({ continueJob: "job1", resumeFrom: "cp1" })).toEqual({ kind: "continue", jobId: "job1", checkpointId: "cp1" });
  });

  it("--continue picks the latest job; it cannot be combined with --continue-job", () => {
    expect(jobTarget({ continue: true, query: "more" })).toEqual({ kind: "continue" });
    expect(() => jobTarget({ continue: true, continueJob: "job1" })).toThrow(/give one of them/);
  });

  it("-i needs a job to continue and an answer", () => {
    expect(() => jobTarget({ interactive: true, query: "yes" })).toThrow(/add --continue or --continue-job/);
    expect(() => jobTarget({ continueJob: "job1", interactive: true })).toThrow(/-i needs the answer/);
  });
});

describe("planContinuation: job + checkpoint + flags -> how the engine starts", () => {
  it("a query continues the checkpoint's conversation; steps carry over", () => {
    const c = planContinuation(job(), checkpoint(), { expertKey: "lead", query: "more" });
    expect(c.start).toEqual({ kind: "continue", checkpoint: checkpoint(), query: "more" });
    expect(c.stepsBefore).toBe(7);
    expect(c.runtime).toBe("perstack");
    expect(c.query).toBe("more");
  });

  it("no query with --resume-from resumes; no query otherwise is an error", () => {
    expect(planContinuation(job(), checkpoint(), { expertKey: "lead", resumeFrom: "cp1" }).start).toEqual({ kind: "resume", checkpoint: checkpoint() });
    expect(() => planContinuation(job(), checkpoint(), { expertKey: "lead" })).toThrow(/missing query: continuing job job1 needs one/);
  });

  it("-i answers a pending interactive call", () => {
    const c = planContinuation(job({ status: "stoppedByInteractiveTool" }), waiting, { expertKey: "lead", query: "blue", interactive: true });
    expect(c.start).toEqual({ kind: "answer", checkpoint: waiting, answer: "blue" });
  });

  it("-i on a checkpoint that is not waiting is refused", () => {
    expect(() => planContinuation(job(), checkpoint(), { expertKey: "lead", query: "blue", interactive: true })).toThrow(
      /checkpoint cp1 of job job1 is completed, not waiting for an interactive answer/,
    );
  });

  it("a waiting checkpoint without -i says how to answer", () => {
    for (const flags of [{ query: "hi" }, { resumeFrom: "cp1" }, {}]) {
      expect(() => planContinuation(job(), waiting, { expertKey: "lead", ...flags })).toThrow(
        "job job1 is waiting for the answer to its interactive tool call askUser; answer it with `perstack run lead --continue-job job1 -i '<answer>'`",
      );
    }
  });

  it("the expert argument must be the checkpoint's expert", () => {
    expect(() => planContinuation(job(), checkpoint(), { expertKey: "writer", query: "q" })).toThrow(
      `job job1's checkpoint is expert "lead", not "writer"; run it with expert "lead"`,
    );
  });

  it("a delegated run's checkpoint is continued through the coordinator", () => {
    const child = checkpoint({
      ...waiting,
      expert: { key: "helper", name: "helper", version: "1.0.0" },
      delegatedBy: { expert: { key: "lead", name: "lead", version: "1.0.0" }, toolCallId: "t0", toolName: "helper", checkpointId: "cp0", runId: "run0" },
    });
    expect(planContinuation(job(), child, { expertKey: "lead", query: "a", interactive: true }).start.kind).toBe("answer");
    expect(() => planContinuation(job(), child, { expertKey: "helper", query: "a", interactive: true })).toThrow(
      `job job1's coordinator is expert "lead", not "helper"; run it with expert "lead"`,
    );
    expect(() => planContinuation(job(), child, { expertKey: "lead", query: "a" })).toThrow(/perstack run lead --continue-job job1 -i/);
  });

  it("only jobs of the built-in runtime continue, and only on it", () => {
    expect(() => planContinuation(job({ runtime: "claude-code" }), checkpoint(), { expertKey: "lead", query: "q" })).toThrow(
      "job job1 ran on runtime claude-code; only the built-in perstack runtime can continue a job",
    );
    expect(() => planContinuation(job(), checkpoint(), { expertKey: "lead", query: "q", runtime: "gemini" })).toThrow(InvalidOptionError);
    expect(planContinuation(job(), checkpoint(), { expertKey: "lead", query: "q", runtime: "docker" }).runtime).toBe("docker");
    expect(planContinuation(job({ runtime: "docker" }), checkpoint(), { expertKey: "lead", query: "q" }).runtime).toBe("docker");
  });

  it("the checkpoint is --resume-from's, else the job's latest; none is an error", () => {
    expect(checkpointIdToContinue(job(), "cpX")).toBe("cpX");
    expect(checkpointIdToContinue(job(), undefined)).toBe("cp1");
    const { latestCheckpointId: _unused, ...noCheckpoint } = job();
    expect(() => checkpointIdToContinue(noCheckpoint, undefined)).toThrow(CannotContinueError);
  });

  it("answerCommand is the command users copy", () => {
    expect(answerCommand("lead", "job1")).toBe("perstack run lead --continue-job job1 -i '<answer>'");
  });
});

describe("waitingDelegates", () => {
  it("collects the checkpoints a stopped checkpoint waits on, depth first, each once", async () => {
    const { waitingDelegates } = await import("../../../src/job/load-continuation.js");
    const ref = { key: "e", name: "e", version: "1" };
    const to = (toolCallId: string, checkpointId?: string) => ({ expert: ref, toolCallId, toolName: "e", runId: `r-${toolCallId}`, query: "q", ...(checkpointId ? { checkpointId } : {}) });
    const base = { jobId: "j", runId: "r", status: "stoppedByInteractiveTool" as const, stepNumber: 1, messages: [], expert: ref, usage: emptyUsage() };
    const store: Record<string, Checkpoint> = {
      mid: { ...base, id: "mid", delegateTo: [to("t2", "leaf")] },
      leaf: { ...base, id: "leaf" },
      other: { ...base, id: "other", delegateTo: [to("t4", "mid")] },
    };
    const root: Checkpoint = { ...base, id: "root", delegateTo: [to("t1", "mid"), to("t3"), to("t5", "other")] };
    expect(waitingDelegates(root, (id) => store[id]!).map((c) => c.id)).toEqual(["mid", "leaf", "other"]);
  });
});
