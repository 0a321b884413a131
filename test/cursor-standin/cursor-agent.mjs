#!/usr/bin/env node
// Stand-in for Cursor's `cursor-agent` (whose installer needs cursor.com, unreachable on this project's machines).
// It checks that it was started exactly as the real CLI would be (flags, env, ~/.cursor/mcp.json), records what
// it received in /workspace/.cursor-standin.json, then plays the contract conversation for real: runs the shell
// command, calls the MCP server from mcp.json over stdio, and prints Cursor's published stream-json lines.
// A query containing "[fail-auth]" makes it fail the way the real CLI does: stderr, exit 1, no result line.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";

const EXPECTED_FLAGS = ["-p", "--output-format", "stream-json", "--force", "--trust", "--approve-mcps", "--model"];
const argv = process.argv.slice(2);
const problems = [];
if (argv[0] === "--version") {
  console.log("cursor-agent stand-in 0.0.0");
  process.exit(0);
}
if (JSON.stringify(argv.slice(0, 7)) !== JSON.stringify(EXPECTED_FLAGS)) problems.push(`flags: ${JSON.stringify(argv.slice(0, 7))}`);
const model = argv[7];
if (argv[8] !== "--workspace" || argv[9] !== "/workspace") problems.push(`workspace: ${JSON.stringify(argv.slice(8, 10))}`);
if (argv.length !== 11) problems.push(`expected the prompt as the one last argument, got ${argv.length} arguments`);
const prompt = argv[10] ?? "";
if (!process.env.CURSOR_API_KEY) problems.push("CURSOR_API_KEY is not set");
if (!process.env.HTTPS_PROXY) problems.push("HTTPS_PROXY is not set");
let mcp;
try {
  mcp = JSON.parse(readFileSync(join(process.env.HOME ?? "/home/agent", ".cursor", "mcp.json"), "utf8"));
} catch (error) {
  problems.push(`~/.cursor/mcp.json: ${error.message}`);
}
writeFileSync(
  "/workspace/.cursor-standin.json",
  JSON.stringify({ argv, envNames: Object.keys(process.env).sort(), mcp, cwd: process.cwd(), uid: process.getuid() }, null, 2),
);
if (problems.length > 0) {
  console.error(`cursor-agent stand-in: not started as the real CLI would be: ${problems.join("; ")}`);
  process.exit(2);
}

const session = randomUUID();
const emit = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
emit({ type: "system", subtype: "init", apiKeySource: "env", cwd: process.cwd(), session_id: session, model, permissionMode: "default" });
emit({ type: "user", message: { role: "user", content: [{ type: "text", text: prompt }] }, session_id: session });
if (prompt.includes("[fail-auth]")) {
  console.error("Error: Authentication failed (401 Unauthorized). Check CURSOR_API_KEY.");
  process.exit(1);
}

emit({ type: "thinking", subtype: "delta", text: "Writing the file, " });
emit({ type: "thinking", subtype: "delta", text: "then pinging the skill." });
emit({ type: "thinking", subtype: "completed" });
emit({ type: "assistant", message: { role: "assistant", content: [{ type: "text", text: "I will write the file." }] }, session_id: session });

const command = "echo contract > contract.txt";
emit({ type: "tool_call", subtype: "started", call_id: "call_shell_1", tool_call: { shellToolCall: { args: { command } } }, session_id: session });
let stdout = "";
let exitCode = 0;
try {
  stdout = execFileSync("/bin/sh", ["-c", command], { cwd: "/workspace", encoding: "utf8" });
} catch (error) {
  exitCode = error.status ?? 1;
}
emit({ type: "tool_call", subtype: "completed", call_id: "call_shell_1", tool_call: { shellToolCall: { args: { command }, result: { success: { command, exitCode, stdout, stderr: "" } } } }, session_id: session });

const [server, config] = Object.entries(mcp.mcpServers ?? {})[0] ?? [];
const name = `${server}-echo`;
const args = { message: "contract ping" };
emit({ type: "tool_call", subtype: "started", call_id: "call_mcp_2", tool_call: { function: { name, arguments: JSON.stringify(args) } }, session_id: session });
const text = await callMcpTool(config, "echo", args);
emit({ type: "tool_call", subtype: "completed", call_id: "call_mcp_2", tool_call: { function: { name, arguments: JSON.stringify(args), result: { success: { content: text } } } }, session_id: session });

const final = "Contract finished.";
emit({ type: "assistant", message: { role: "assistant", content: [{ type: "text", text: final }] }, session_id: session });
emit({ type: "result", subtype: "success", is_error: false, duration_ms: 42, duration_api_ms: 40, result: final, session_id: session, request_id: randomUUID(), usage: { inputTokens: 120, outputTokens: 30, cacheReadTokens: 0, cacheWriteTokens: 0 } });

/** A minimal MCP stdio client: initialize, initialized, tools/call. */
function callMcpTool(server, tool, toolArgs) {
  const env = { ...process.env };
  for (const [key, value] of Object.entries(server.env ?? {})) {
    env[key] = String(value).replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, n) => process.env[n] ?? "");
  }
  const child = spawn(server.command, server.args ?? [], { env, stdio: ["pipe", "pipe", "inherit"] });
  const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error("MCP server did not answer")), 30_000);
    child.stdout.on("data", (chunk) => {
      buffer += chunk.toString("utf8");
      let newline;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (message.id === 1) {
          send({ method: "notifications/initialized" });
          send({ id: 2, method: "tools/call", params: { name: tool, arguments: toolArgs } });
        } else if (message.id === 2) {
          clearTimeout(timer);
          child.kill();
          resolve((message.result?.content ?? []).map((c) => c.text ?? "").join(""));
        }
      }
    });
    send({ id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "cursor-agent-standin", version: "0.0.0" } } });
  });
}
