import { describe, expect, it } from "vitest";
import { normalizeBuiltinTool, unwrapShell } from "../../../src/runtimes/tool-concepts.js";

describe("built-in tools as Perstack concepts", () => {
  it("maps each CLI's shell tool to exec {command}", () => {
    expect(normalizeBuiltinTool("claude-code", "Bash", { command: "ls", description: "list" })).toEqual({ toolName: "exec", args: { command: "ls" } });
    expect(normalizeBuiltinTool("gemini", "run_shell_command", { command: "ls", description: "list" })).toEqual({ toolName: "exec", args: { command: "ls" } });
    expect(normalizeBuiltinTool("codex", "command_execution", { command: "bash -lc 'echo it'\\''s > f'" })).toEqual({ toolName: "exec", args: { command: "echo it's > f" } });
    expect(normalizeBuiltinTool("cursor", "shellToolCall", { command: "ls" })).toEqual({ toolName: "exec", args: { command: "ls" } });
  });

  it("maps file writes to writeTextFile {path, text}", () => {
    expect(normalizeBuiltinTool("claude-code", "Write", { file_path: "/w/a", content: "x" })).toEqual({ toolName: "writeTextFile", args: { path: "/w/a", text: "x" } });
    expect(normalizeBuiltinTool("gemini", "write_file", { file_path: "/w/a", content: "x" })).toEqual({ toolName: "writeTextFile", args: { path: "/w/a", text: "x" } });
  });

  it("leaves unknown tools alone", () => {
    expect(normalizeBuiltinTool("claude-code", "TodoWrite", {})).toBeUndefined();
    expect(normalizeBuiltinTool("nope", "Bash", {})).toBeUndefined();
  });

  it("unwraps shell wrappers and argv arrays", () => {
    expect(unwrapShell(["bash", "-lc", "echo hi"])).toBe("echo hi");
    expect(unwrapShell(["ls", "-la"])).toBe("ls -la");
    expect(unwrapShell("/bin/bash -lc \"echo hi\"")).toBe("echo hi");
    expect(unwrapShell("echo plain")).toBe("echo plain");
  });
});
