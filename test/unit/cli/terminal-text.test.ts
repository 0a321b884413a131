import { describe, expect, it } from "vitest";
import { formatEvent } from "../../../src/cli/live-view.js";
import type { PerstackEvent } from "../../../src/model/perstack.js";
import { jsonTerminalSafe, terminalSafe } from "../../../src/cli/terminal-text.js";

describe("terminalSafe", () => {
  it("removes escape sequences and control characters an agent could use on the user's terminal", () => {
    const hostile = [
      "\u001b[2J\u001b[H", // clear screen, cursor home
      "\u001b]0;owned\u0007", // window title
      "\u001b]52;c;ZXZpbA==\u0007", // clipboard (OSC 52)
      "\u001b]8;;https://evil.example\u001b\\link\u001b]8;;\u001b\\", // hyperlink
      "\u001bP+q\u001b\\", // DCS
      "a\rb\bc\u0007d\u007f\u009b31m", // CR, backspace, BEL, DEL, C1 CSI
      "\u202eevil\u202c",
    ].join("|");
    const safe = terminalSafe(hostile);
    // eslint-disable-next-line no-control-regex -- control characters are what this is about
    expect(safe).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e]/);
    expect(safe).toContain("link");
    expect(safe).toContain("evil");
  });

  it("keeps newlines, tabs and ordinary text, including non-ASCII", () => {
    expect(terminalSafe("line 1\n\tline 2 — ✓ 日本")).toBe("line 1\n\tline 2 — ✓ 日本");
  });

  it("cleans what the live view prints from model and tool text", () => {
    const event = {
      id: "e", expertKey: "main", timestamp: 1, jobId: "j", runId: "r", stepNumber: 1, type: "callTools",
      newMessage: { type: "expertMessage", id: "m", contents: [] },
      toolCalls: [{ id: "t", skillName: "base", toolName: "exec\u001b[31m", args: { command: "echo \u001b]0;x\u0007hi" } }],
      usage: { inputTokens: 0, outputTokens: 0, reasoningTokens: 0, totalTokens: 0, cachedInputTokens: 0 },
    } as PerstackEvent;
    // eslint-disable-next-line no-control-regex -- control characters are what this is about
    expect(terminalSafe(formatEvent(event)!)).not.toMatch(/\u001b|\u0007/);
  });
});

describe("jsonTerminalSafe", () => {
  it("escapes what JSON.stringify leaves raw and a terminal acts on, so the JSON still reads back the same", () => {
    const value = { text: "a\u001b[2Jb\u009b31m\u007f\u0085\u202eevil\u2066x\u2069 ✓ 日本", [`key\u009b`]: 1 };
    const json = jsonTerminalSafe(JSON.stringify(value));
    // eslint-disable-next-line no-control-regex -- control characters are what this is about
    expect(json).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(json).toContain("\\u009b31m");
    expect(JSON.parse(json)).toEqual(value);
    expect(jsonTerminalSafe('{"plain":"text"}')).toBe('{"plain":"text"}');
  });
});
