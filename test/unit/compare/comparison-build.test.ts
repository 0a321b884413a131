// A comparison from recorded jobs: each run's figures as `perstack log` counts them, the spreads over repeats, the
// cost and where it came from, and the terminal table. The jobs are laid out as the collector writes them.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildComparison, comparisonRun, spread } from "../../../src/compare/comparison-build.js";
import { formatComparisonTable } from "../../../src/compare/comparison-table.js";
import { COMPARISON_RUN_FILE, readJobRecord } from "../../../src/compare/job-record.js";
import { comparisonFromJobs } from "../../../src/compare/run-comparison.js";
import { multiRunJob, perstackDir, usage, writeJob } from "../history/job-fixtures.js";

const ROOT_SETTING = { jobId: "job1", runId: "r1", model: "claude-sonnet-4-5", provider: "anthropic", runtime: { name: "perstack", cliPackage: "perstack-sandbox", cliVersion: "0.1.0" }, images: [{ role: "agent", ref: "perstack/agent-perstack:abc" }], query: "Write the notes", expertKey: "lead" };

function recordedJob(over: { id?: string; metered?: boolean; wallMs?: number; compare?: Record<string, unknown> } = {}) {
  const dir = perstackDir();
  const fixture = multiRunJob();
  const id = over.id ?? "job1";
  fixture.job = {
    ...fixture.job,
    id,
    startedAt: 1_000,
    finishedAt: 1_000 + (over.wallMs ?? 42_000),
    ...(over.metered
      ? { metered: { requests: 3, usage: { inputTokens: 900, outputTokens: 90, reasoningTokens: 0, totalTokens: 990, cachedInputTokens: 300, cacheWriteTokens: 10 }, costUsd: 0.0123, pricing: { source: "shipped", date: "2026-11-29", sha256: "a".repeat(64) } } }
      : {}),
  };
  fixture.settings = { ...fixture.settings, r1: { ...ROOT_SETTING, jobId: id } };
  const jobDir = writeJob(dir, fixture);
  if (over.compare) writeFileSync(join(jobDir, COMPARISON_RUN_FILE), JSON.stringify(over.compare));
  return dir;
}

describe("a run from its job's record", () => {
  it("counts steps, calls by normalized name, retries and blocked egress, and takes the coordinator's answer", async () => {
    const dir = recordedJob({ metered: true });
    const run = comparisonRun(await readJobRecord(dir, "job1"), { repeat: 0 });
    expect(run).toMatchObject({
      runtime: "perstack",
      jobId: "job1",
      status: "completed",
      model: "claude-sonnet-4-5",
      provider: "anthropic",
      wallTimeMs: 42_000,
      steps: 3,
      toolCalls: { writeTextFile: 1, helper: 1, exec: 1 },
      toolCallCount: 3,
      retries: 1,
      blockedEgress: 1,
      egress: [{ action: "blocked", domain: "evil.example.com", port: 443, count: 1 }],
      finalAnswer: "All done",
      costUsd: 0.0123,
      costSource: "metered",
      metered: { requests: 3, usage: { inputTokens: 900, cachedInputTokens: 300, cacheWriteTokens: 10 } },
    });
    expect(run.selfReported.usage).toMatchObject(usage(100, 20));
    // The timeline in order, normalized, with the failed result marked.
    expect(run.timeline.map((c) => [c.name, c.nativeName, c.failed])).toEqual([
      ["writeTextFile", undefined, false],
      ["helper", undefined, undefined],
      ["exec", "Bash", true],
    ]);
    expect(run.timeline[0]!.atMs).toBe(4);
    // A plain job has no record of its workspace changes: unknown, not "none".
    expect(run.changes).toBeUndefined();
  });

  it("has no cost without the gateway's meter or a CLI's own report", async () => {
    const run = comparisonRun(await readJobRecord(recordedJob(), "job1"), { repeat: 0 });
    expect(run).toMatchObject({ costUsd: null, costSource: "none" });
  });
});

describe("spreads and the table", () => {
  it("takes medians (the middle pair's mean for even counts), minimum and maximum", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 10])).toEqual({ median: 3, min: 1, max: 10 });
    expect(spread([])).toEqual({ median: 0, min: 0, max: 0 });
  });

  it("shows one row per runtime with (min–max) over repeats, and says what was skipped", async () => {
    const a = await readJobRecord(recordedJob({ id: "jobA", metered: true, wallMs: 40_000 }), "jobA");
    const b = await readJobRecord(recordedJob({ id: "jobB", metered: true, wallMs: 60_000 }), "jobB");
    const comparison = buildComparison(
      { id: "cmp1", createdAt: 0, expertKey: "lead", query: "q", runtimes: ["perstack", "gemini"], repeat: 2, concurrency: 2, fromJobs: false },
      [
        { record: a, runtime: "perstack", repeat: 0 },
        { record: b, runtime: "perstack", repeat: 1 },
      ],
      [{ runtime: "gemini", reason: "GEMINI_API_KEY is not set" }],
      "0.1.0",
    );
    expect(comparison.summary).toHaveLength(1);
    expect(comparison.summary[0]).toMatchObject({ runtime: "perstack", runs: 2, completed: 2, wallTimeMs: { median: 50_000, min: 40_000, max: 60_000 }, costUsd: { median: 0.0123 } });
    expect(comparison.provenance).toMatchObject({ runtimes: [{ runtime: "perstack", cliPackage: "perstack-sandbox", cliVersion: "0.1.0", image: "perstack/agent-perstack:abc" }], models: ["claude-sonnet-4-5"], pricing: { source: "shipped" } });
    const table = formatComparisonTable(comparison, { json: "/x/comparison.json", html: "/x/report.html" });
    expect(table.split("\n")[0]).toMatch(/^runtime\s+status\s+wall\s+steps\s+tools\s+in\s+out\s+cached\s+cost\s+retries\s+blocked$/);
    expect(table).toMatch(/^perstack\s+2\/2 completed\s+50\.0s \(40\.0s–1m 00s\)\s+3\s+3\s+900\s+90\s+300\s+\$0\.012\s+1\s+1$/m);
    expect(table).toContain("medians of 2 runs each");
    expect(table).toContain("skipped gemini: GEMINI_API_KEY is not set");
    expect(table).toContain("report: /x/report.html");
  });
});

describe("--from", () => {
  it("rebuilds a comparison's settings from its runs' records, in the comparison's order", async () => {
    const header = { createdAt: 5, expertKey: "lead", query: "Write the notes", runtimes: ["perstack"], repeat: 2, concurrency: 2, check: "true", skipped: [{ runtime: "codex", reason: "no key" }], warnings: ["a note"] };
    const check = { command: "true", passed: true, exitCode: 0, timedOut: false, durationMs: 10, outputTail: "" };
    const dir = recordedJob({ id: "jobA", compare: { comparisonId: "cmp9", runtime: "perstack", repeat: 1, check, comparison: header, changes: { files: [], patch: "", patchTruncated: false } } });
    const fixture = multiRunJob();
    fixture.job = { ...fixture.job, id: "jobB" };
    fixture.settings = { ...fixture.settings, r1: { ...ROOT_SETTING, jobId: "jobB" } };
    const jobDir = writeJob(dir, fixture);
    writeFileSync(join(jobDir, COMPARISON_RUN_FILE), JSON.stringify({ comparisonId: "cmp9", runtime: "perstack", repeat: 0, check, comparison: header }));
    const rebuilt = await comparisonFromJobs(dir, ["jobA", "jobB"], "0.1.0");
    expect(rebuilt).toMatchObject({ id: "cmp9", createdAt: 5, check: "true", repeat: 2, skipped: header.skipped, warnings: ["a note"], fromJobs: true });
    expect(rebuilt.runs.map((r) => [r.jobId, r.repeat])).toEqual([
      ["jobB", 0],
      ["jobA", 1],
    ]);
    expect(rebuilt.summary[0]!.checksPassed).toBe(2);
  });

  it("compares plain jobs as they are, numbering repeats per runtime", async () => {
    const dir = recordedJob({ id: "jobA" });
    const fixture = multiRunJob();
    fixture.job = { ...fixture.job, id: "jobB" };
    writeJob(dir, fixture);
    const rebuilt = await comparisonFromJobs(dir, ["jobA", "jobB"], "0.1.0");
    expect(rebuilt).toMatchObject({ runtimes: ["perstack"], repeat: 2, fromJobs: true, skipped: [] });
    expect(rebuilt.runs.map((r) => r.repeat)).toEqual([0, 1]);
  });
});
