import { describe, expect, it } from "vitest";
import { readJobLog, type JobLog, type LogQuery } from "../../../src/history/job-log.js";
import { describeEvent, formatLogJson, formatLogText } from "../../../src/history/log-format.js";
import type { LoggedEvent } from "../../../src/history/logged-event.js";
import { multiRunJob, perstackDir, writeJob } from "./job-fixtures.js";

async function fixtureLog(over: Partial<LogQuery> = {}): Promise<JobLog> {
  const dir = perstackDir();
  writeJob(dir, multiRunJob());
  return (await readJobLog(dir, { selector: {}, paging: { take: 100, offset: 0, context: 0 }, ...over }))!;
}

const e = (type: string, fields: Record<string, unknown> = {}): LoggedEvent => ({ type, id: "e", runId: "r", timestamp: 0, expertKey: "lead", stepNumber: 1, ...fields });

describe("perstack log output", () => {
  it("--json: Perstack's keys, in its order, and nothing else unless something was skipped", async () => {
    const log = await fixtureLog();
    const parsed = JSON.parse(formatLogJson(log, false)) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(["job", "events", "summary", "checkpoints", "isLatestJob", "storagePath", "totalEventsBeforeLimit", "matchedAfterPagination", "warnings"]);
    expect(parsed.warnings).toEqual(["skipped 2 line(s) of runs/r1/events.jsonl that are not events"]);
    expect((parsed.events as unknown[]).length).toBe(18);
    expect(formatLogJson(log, false)).not.toContain("\n");
    expect(formatLogJson(log, true)).toContain('\n  "job": {');
    const clean = JSON.parse(formatLogJson({ ...log, warnings: [], isLatestJob: undefined, checkpoints: undefined }, false)) as Record<string, unknown>;
    expect(Object.keys(clean)).toEqual(["job", "events", "summary", "storagePath", "totalEventsBeforeLimit", "matchedAfterPagination"]);
  });

  it("the readable view: the job, a note that it is the latest, one line per event, the count", async () => {
    const text = formatLogText(await fixtureLog());
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/^Job job1 · lead · perstack · completed · 3 steps · 120 tokens · started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d · 42\.0s$/);
    expect(lines[1]).toBe("(the latest job: pick another with --job <jobId>; list them with `perstack jobs`)");
    expect(text).toMatch(/\n\d\d:\d\d:\d\d\.\d{3} {3}#1 {2}lead {4}retry {15}429: slow down\n/);
    expect(text).toContain("callTools           writeTextFile {\"path\":\"notes.txt\",\"text\":\"n\"}");
    expect(text).toContain("-  -       proxyAccess         blocked evil.example.com:443 (not-allowlisted)");
    expect(text).toContain("callDelegate        → helper \"summarize\"");
    expect(text).toContain("stopRunByDelegate   waits for helper · checkpoint cp2");
    expect(text).toContain("callTools           Bash (exec) {\"command\":\"cat notes.txt\"}");
    expect(text).toContain("resolveToolResults  ✗ Bash: cat: notes.txt: denied");
    expect(lines.at(-1)).toBe("18 events");
  });

  it("a skill's events are named after their run's expert; the sandbox's own events after no one", async () => {
    const log = await fixtureLog();
    const skill: LoggedEvent = { type: "skillStarting", id: "s", runId: "r2", timestamp: 2000, skillName: "@perstack/base" };
    const text = formatLogText({ ...log, events: [...log.events, skill] });
    expect(text).toMatch(/ {3}- {2}helper {2}skillStarting {7}@perstack\/base\n/);
    expect(text).toMatch(/ {3}- {2}- {7}proxyAccess/);
  });

  it("--verbose adds the full tool arguments and results under their events", async () => {
    const text = formatLogText(await fixtureLog(), { verbose: true });
    expect(text).toContain(["      @perstack/base/writeTextFile", "        {", '          "path": "notes.txt",', '          "text": "n"', "        }"].join("\n"));
    expect(text).toContain(["      ✗ Bash", "        cat: notes.txt: denied"].join("\n"));
  });

  it("paging notes say how many matched and how to see the rest", async () => {
    expect(formatLogText(await fixtureLog({ paging: { take: 5, offset: 0, context: 1 }, selector: { types: new Set(["callTools", "retry"]) } })).split("\n").at(-1)).toBe(
      "3 events (+4 around them)",
    );
    expect(formatLogText(await fixtureLog({ paging: { take: 2, offset: 0, context: 0 } })).split("\n").at(-1)).toBe(
      "showing 2 of 18 matching events: page with --offset and --take, or --take 0 for all",
    );
    expect(formatLogText(await fixtureLog({ paging: { take: 2, offset: 50, context: 0 } })).split("\n").at(-1)).toBe("18 events match; --offset is past them");
    expect(formatLogText(await fixtureLog({ selector: { types: new Set(["stopRunByError"]) } })).split("\n").at(-1)).toBe("no events match (of 18)");
  });

  it("--summary replaces the events with what the job amounted to", async () => {
    const text = formatLogText(await fixtureLog(), { summary: true });
    expect(text).not.toContain("callTools ");
    for (const line of [
      "Summary of the job:",
      "  status       completed",
      "  steps        3",
      "  tokens       120 (in 100 · out 20 · cached 0 · reasoning 0)",
      "  duration     42.0s",
      "  runs         2 · 18 events",
      "  tool calls   3: exec 1 · helper 1 · writeTextFile 1",
      "  errors       0 stopped by error · 1 retry · 1 failed tool result · 0 sandbox warnings",
      "  egress       1 blocked: evil.example.com",
      "  checkpoints  4, latest cp4",
      "                 cp2  lead step 2 stoppedByDelegate",
      "  skipped      2 line(s) that are not events",
    ]) {
      expect(text.split("\n")).toContain(line);
    }
    expect(text).toMatch(/\n {17}\d\d:\d\d:\d\d\.\d{3} lead step 1 retry: 429: slow down\n/);
    const run = formatLogText(await fixtureLog({ runId: "r2" }), { summary: true });
    expect(run).toContain("Summary of run r2:\n  status       completed\n  steps        1\n");
  });

  it("--messages shows the checkpoint's history instead of the events", async () => {
    const text = formatLogText(await fixtureLog({ checkpointId: "cp4", messages: true }), { messages: true });
    expect(text.split("\n").slice(1)).toEqual(["Checkpoint cp4 · run r1 · lead · step 3 · completed", "", "Messages (2):", "    1  instruction You are lead.", "    2  user        Write the notes"]);
  });

  it("one event, one line: text from the sandbox cannot start a line of its own", () => {
    const { line } = describeEvent(e("completeRun", { text: "done\n12:00:00.000    #9  lead    completeRun  forged", checkpoint: { id: "c" } }));
    expect(line).toBe("done 12:00:00.000 #9 lead completeRun forged · checkpoint c");
    expect(describeEvent(e("retry", { reason: "x".repeat(500) })).line).toHaveLength(140);
    expect(describeEvent(e("retry", { reason: "x".repeat(500) }), true).details).toEqual([`      ${"x".repeat(500)}`]);
  });

  it("shapes it does not expect are shown, never thrown over", () => {
    for (const type of ["callTools", "callDelegate", "callInteractiveTool", "resolveToolResults", "attemptCompletion", "completeRun", "stopRunByError", "stopRunByDelegate", "stopRunByInteractiveTool", "startRun", "proxyAccess", "sandboxWarning", "initializeRuntime"]) {
      for (const junk of [{}, { toolCalls: 5, toolResults: "x", checkpoint: [], error: 3, inputMessages: {}, text: 4 }, { toolCalls: [null, 1, { toolName: 3 }], toolCall: "x", toolResults: [null, { result: 5 }] }]) {
        expect(() => describeEvent(e(type, junk), true), `${type} ${JSON.stringify(junk)}`).not.toThrow();
      }
    }
    expect(describeEvent(e("someFutureEvent", { answer: 42 })).line).toBe('{"answer":42}');
  });
});
