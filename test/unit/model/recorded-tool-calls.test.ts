// Tool calls are recorded by what they add to their message (model/recorded-tool-calls.ts): args the message's
// toolCallPart has, and normalized args that are args by another name, are not written twice, and read back to the
// very text of the whole event. What a file holds is not trusted when it is read back.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { newReadProblems, readEventsFile } from "../../../src/history/events-stream.js";
import { emittedEvent, expandRecord, recordedEvent, UnresolvedMessagesError } from "../../../src/model/event-messages.js";
import type { Message, PerstackEvent } from "../../../src/model/perstack.js";
import { perstackEventSchema } from "../../../src/model/event-schema.js";

const usage = { inputTokens: 3, outputTokens: 1, reasoningTokens: 0, totalTokens: 4, cachedInputTokens: 0 };
const CONTENT = "a file's text, written once\n".repeat(200);
const writeArgs = () => ({ file_path: "/workspace/notes.txt", content: CONTENT });

function part(id: string, toolName: string, args: unknown) {
  return { type: "toolCallPart", toolCallId: id, toolName, args };
}

/** A Claude Code step calling Write (normalized as writeTextFile) and an MCP tool (not normalized). */
function callTools(over: { calls?: Array<Record<string, unknown>>; parts?: unknown[] } = {}): PerstackEvent {
  const args = writeArgs();
  const parts = over.parts ?? [{ type: "textPart", text: "Writing." }, part("t1", "Write", args), part("t2", "echo", { message: "hi" })];
  const calls = over.calls ?? [
    { id: "t1", skillName: "claude-code", toolName: "Write", args, normalized: { toolName: "writeTextFile", args: { path: args.file_path, text: args.content } } },
    { id: "t2", skillName: "everything", toolName: "echo", args: { message: "hi" } },
  ];
  return {
    id: "e1", expertKey: "e", timestamp: 1, jobId: "j", runId: "r", stepNumber: 1, type: "callTools",
    newMessage: { type: "expertMessage", id: "m1", contents: parts } as Message, toolCalls: calls, usage,
  } as unknown as PerstackEvent;
}

/** The event as events.jsonl holds it, read back. */
const recorded = (event: PerstackEvent) => JSON.parse(JSON.stringify(recordedEvent(event))) as Record<string, unknown>;
const text = (value: unknown) => JSON.stringify(value);
const noFiles = () => [] as Message[];
/** A recorded callTools, loosely typed: the tests change it as anyone could change the file. */
type Recorded = { newMessage: { contents: unknown[] }; toolCalls: [{ normalized: Record<string, unknown> & { argsFrom: unknown } }] };

describe("tool calls as events.jsonl records them", () => {
  it("the args once (in the message), normalized args by the names of the args they repeat; read back to the same text", () => {
    const event = callTools();
    const record = recorded(event);
    expect(text(record).split(JSON.stringify(CONTENT)).length - 1).toBe(1);
    expect(text(event).split(JSON.stringify(CONTENT)).length - 1).toBe(3);
    expect(record.toolCalls).toEqual([
      { id: "t1", skillName: "claude-code", toolName: "Write", normalized: { toolName: "writeTextFile", argsFrom: { path: "file_path", text: "content" } } },
      { id: "t2", skillName: "everything", toolName: "echo" },
    ]);
    expect(text(emittedEvent(record))).toBe(text(event));
    expect(text(expandRecord(record, noFiles))).toBe(text(event));
    expect(perstackEventSchema.safeParse(emittedEvent(record)).success).toBe(true);
    // A whole event reads back as it is (events recorded before this shortcut existed).
    expect(text(emittedEvent(JSON.parse(text(event)) as Record<string, unknown>))).toBe(text(event));
  });

  it("callInteractiveTool and callDelegate the same way", () => {
    const args = { question: "Which file?" };
    const interactive = {
      id: "e2", expertKey: "e", timestamp: 1, jobId: "j", runId: "r", stepNumber: 1, type: "callInteractiveTool",
      newMessage: { type: "expertMessage", id: "m1", contents: [part("q1", "ask", args)] }, toolCall: { id: "q1", skillName: "s", toolName: "ask", args }, usage,
    } as unknown as PerstackEvent;
    expect(recorded(interactive).toolCall).toEqual({ id: "q1", skillName: "s", toolName: "ask" });
    expect(text(emittedEvent(recorded(interactive)))).toBe(text(interactive));
    const delegate = { ...callTools(), type: "callDelegate" } as PerstackEvent;
    expect((recorded(delegate).toolCalls as object[]).every((call) => !Object.hasOwn(call, "args"))).toBe(true);
    expect(text(emittedEvent(recorded(delegate)))).toBe(text(delegate));
  });

  it.each([
    ["args other than the part's", () => callTools({ calls: [{ id: "t1", skillName: "s", toolName: "Write", args: { file_path: "/other", content: "x" } }] })],
    ["no part with the call's id", () => callTools({ parts: [part("zz", "Write", writeArgs())], calls: [{ id: "t1", skillName: "s", toolName: "Write", args: writeArgs() }] })],
    ["a part of another tool name", () => callTools({ parts: [part("t1", "Read", writeArgs())], calls: [{ id: "t1", skillName: "s", toolName: "Write", args: writeArgs() }] })],
    ["args before toolName", () => callTools({ calls: [{ id: "t1", args: writeArgs(), skillName: "s", toolName: "Write" }] })],
    ["args nested deeper than compared", () => {
      let deep: unknown = "bottom";
      for (let i = 0; i < 40; i++) deep = { d: deep };
      return callTools({ parts: [part("t1", "Write", deep)], calls: [{ id: "t1", skillName: "s", toolName: "Write", args: JSON.parse(text(deep)) }] });
    }],
  ])("a call keeps its args when it has %s, and reads back the same", (_what, make) => {
    const event = make();
    const record = recorded(event);
    expect((record.toolCalls as object[]).every((call) => Object.hasOwn(call, "args"))).toBe(true);
    expect(text(emittedEvent(record))).toBe(text(event));
  });

  it("a call with fields after its normalized form reads back in its own key order", () => {
    const args = writeArgs();
    const call = { id: "t1", skillName: "s", toolName: "Write", args: { other: 1 }, normalized: { toolName: "writeTextFile", args: { path: args.file_path } }, extra: true };
    const event = callTools({ parts: [part("t1", "Write", args)], calls: [{ ...call, args: { ...args, other: 1 } }] });
    expect(text(emittedEvent(recorded(event)))).toBe(text(event));
  });

  it.each([
    ["a value no arg has (codex's unwrapped shell command)", { toolName: "exec", args: { command: "ls -la" } }, { command: ["bash", "-lc", "ls -la"] }],
    ["a key named __proto__", JSON.parse('{"toolName":"exec","args":{"__proto__":"ls"}}'), { cmd: "ls" }],
    ["its fields in another order", { args: { command: "ls" }, toolName: "exec" }, { command: "ls" }],
    ["no args", { toolName: "exec", args: {} }, { command: "ls" }],
  ])("normalized stays whole when it has %s", (_what, normalized, args) => {
    const event = callTools({ parts: [part("t1", "Bash", args)], calls: [{ id: "t1", skillName: "s", toolName: "Bash", args, normalized }] });
    const record = recorded(event);
    expect((record.toolCalls as Array<{ normalized: object }>)[0]!.normalized).toEqual(JSON.parse(text(normalized)));
    expect(text(emittedEvent(record))).toBe(text(event));
  });

  it("a field named __proto__ in a recorded call stays a field (data), never the object's prototype", () => {
    const record = recorded(callTools());
    const line = text(record).replace('"toolName":"Write","normalized":{', '"toolName":"Write","__proto__":{"polluted":true},"normalized":{"__proto__":{"also":true},');
    const whole = emittedEvent(JSON.parse(line) as Record<string, unknown>) as { toolCalls: Array<Record<string, unknown>> };
    const call = whole.toolCalls[0]!;
    expect(Object.getPrototypeOf(call)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(call.normalized)).toBe(Object.prototype);
    expect(text(call)).toContain('"__proto__":{"polluted":true}');
    expect(text(call.normalized)).toContain('"__proto__":{"also":true}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ["args taken from a part that is not there", (r: Recorded) => (r.newMessage.contents = [])],
    ["argsFrom naming an arg the call does not have", (r: Recorded) => (r.toolCalls[0].normalized.argsFrom = { path: "nope", text: "content" })],
    ["argsFrom naming __proto__", (r: Recorded) => (r.toolCalls[0].normalized.argsFrom = JSON.parse('{"__proto__":"file_path"}'))],
    ["both args and argsFrom", (r: Recorded) => (r.toolCalls[0].normalized.args = {})],
    ["argsFrom that is not an object", (r: Recorded) => (r.toolCalls[0].normalized.argsFrom = "file_path")],
  ])("a changed file with %s does not read back, and says where", (_what, change) => {
    const record = recorded(callTools());
    change(record as unknown as Recorded);
    expect(() => emittedEvent(record)).toThrow(UnresolvedMessagesError);
    expect(() => emittedEvent(record)).toThrow(/toolCalls\[0\]/);
    expect(() => expandRecord(record, noFiles)).toThrow(UnresolvedMessagesError);
  });

  it("`perstack log` reads the calls whole, so filters and summaries see their args; a broken one is read as recorded", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perstack-calls-"));
    try {
      const broken = recorded(callTools());
      (broken.newMessage as { contents: unknown[] }).contents = [];
      const path = join(dir, "events.jsonl");
      writeFileSync(path, `${text(recorded(callTools()))}\n${text(broken)}\n`);
      const read = [];
      for await (const event of readEventsFile({ runId: "r", path }, newReadProblems())) read.push(event);
      expect(text(read[0])).toBe(text(callTools()));
      expect(text(read[1])).toBe(text(broken));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
