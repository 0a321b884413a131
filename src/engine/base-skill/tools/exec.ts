import { spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { WorkspacePathError, resolveInWorkspace } from "../workspace-path.js";
import { textResult, type SkillContext } from "../skill-context.js";

export const DEFAULT_EXEC_TIMEOUT_MS = 60_000;
/** Per stream; a model cannot use megabytes of output and it would bloat every later request. */
export const MAX_EXEC_OUTPUT_CHARS = 100_000;

export interface ExecRequest {
  command: string;
  args: string[];
  cwd: string;
  /** What the command's environment starts from: the skill's own (SkillContext.env). */
  baseEnv: Readonly<Record<string, string | undefined>>;
  env: Record<string, string>;
  timeoutMs: number;
}

export interface ExecOutcome {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  spawnError?: string;
}

/**
 * Run one command without a shell (a shell only runs if `command` is one). It gets its own process group so a
 * timeout kills everything it started, not just the direct child.
 */
export function runCommand(request: ExecRequest): Promise<ExecOutcome> {
  return new Promise((resolvePromise) => {
    const child = spawn(request.command, request.args, {
      cwd: request.cwd,
      env: { ...request.baseEnv, ...request.env },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = boundedCollector();
    const err = boundedCollector();
    child.stdout.on("data", out.push);
    child.stderr.on("data", err.push);
    let timedOut = false;
    let spawnError: string | undefined;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, request.timeoutMs);
    child.on("error", (error) => {
      spawnError = error.message;
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      // Children that outlive the command (backgrounded with &) must not keep running unsupervised.
      if (timedOut) killGroup();
      resolvePromise({ exitCode, signal, timedOut, stdout: out.text(), stderr: err.text(), ...(spawnError ? { spawnError } : {}) });
    });
  });
}

function boundedCollector() {
  let text = "";
  let dropped = 0;
  return {
    push: (chunk: Buffer) => {
      const s = chunk.toString("utf8");
      const room = MAX_EXEC_OUTPUT_CHARS - text.length;
      if (room >= s.length) text += s;
      else {
        text += s.slice(0, Math.max(0, room));
        dropped += s.length - Math.max(0, room);
      }
    },
    text: () => (dropped > 0 ? `${text}\n[output truncated: ${dropped} more characters]` : text),
  };
}

export function registerExecTools(server: McpServer, ctx: SkillContext): void {
  server.registerTool(
    "exec",
    {
      description:
        "Run a command with arguments (no shell; use command \"sh\" with args [\"-c\", \"...\"] for one) in the workspace. " +
        "cwd must be inside the workspace. timeout is in milliseconds (default 60000); the whole process group is killed on timeout.",
      inputSchema: {
        command: z.string().min(1),
        args: z.array(z.string()).optional(),
        cwd: z.string().optional(),
        env: z.record(z.string(), z.string()).optional(),
        timeout: z.number().int().positive().optional(),
        stdout: z.boolean().optional(),
        stderr: z.boolean().optional(),
      },
    },
    async ({ command, args, cwd, env, timeout, stdout, stderr }) => {
      const dir = await resolveInWorkspace(ctx.root, cwd ?? ".");
      if (!(await stat(dir)).isDirectory()) throw new WorkspacePathError(`exec: cwd ${JSON.stringify(cwd)} is not a directory.`);
      const timeoutMs = timeout ?? DEFAULT_EXEC_TIMEOUT_MS;
      const outcome = await runCommand({ command, args: args ?? [], cwd: dir, baseEnv: ctx.env, env: env ?? {}, timeoutMs });
      const parts: string[] = [];
      if (stdout ?? true) parts.push(outcome.stdout);
      if (stderr ?? true) parts.push(outcome.stderr);
      const output = parts.filter((p) => p !== "").join("\n");
      if (outcome.spawnError) return textResult(`exec: could not start ${JSON.stringify(command)}: ${outcome.spawnError}`, true);
      if (outcome.timedOut) {
        return textResult(`exec: ${JSON.stringify(command)} timed out after ${timeoutMs} ms and was killed.${output ? `\n${output}` : ""}`, true);
      }
      if (outcome.exitCode !== 0) {
        const how = outcome.signal ? `was killed by ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
        return textResult(`exec: ${JSON.stringify(command)} ${how}.${output ? `\n${output}` : ""}`, true);
      }
      return textResult(output === "" ? "Command executed successfully, but produced no output." : output);
    },
  );
}
