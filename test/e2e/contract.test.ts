// One Expert, every CLI runtime. The same scripted conversation is played by each fake model server in its own
// protocol: (1) a text reply with (2) a shell tool call that writes a file, (3) an MCP skill call, (4) the final
// answer. Each runtime runs with the real CLI in its sandbox, on the SAME perstack.toml: only --runtime changes
// (base URLs and keys come from the environment, as users already set them for these CLIs).
//
// Real differences between runtimes, listed rather than hidden:
// - gemini reports no thinking and no cost; codex reports no cost; claude-code reports total_cost_usd.
// - codex runs shell commands through `bash -lc`, which the normalized view unwraps.
// - Native tool names differ (Bash / run_shell_command / command_execution / shellToolCall); `normalized` makes
//   them all `exec`.
// - cursor runs a stand-in executable (its installer needs cursor.com): verified at the format level, with the
//   stand-in checking it got the real CLI's flags, env and mcp.json and doing the file write and MCP call for real.
//   It talks to no model, so no proxy traffic is expected from it.
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { cursorStandinBase, startFakeModel, type FakeKind, type FakeModel, type FakeStep } from "../support/fake-model-container.js";
import { wholeToolCalls } from "../../src/model/recorded-tool-calls.js";

const docker = await requireDocker();

const TOML = `maxRetries = 0
[experts."contract"]
description = "Contract expert"
instruction = "Follow the user's request exactly."
[experts."contract".skills."everything"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@modelcontextprotocol/server-everything@2026.8.31"
`;

const FILE_COMMAND = "echo contract > contract.txt";
const FINAL = "Contract finished.";

interface RuntimeCase {
  runtime: "claude-code" | "gemini" | "codex" | "cursor";
  fake?: FakeKind;
  baseUrlEnv?: string;
  keyEnv: string;
  script: FakeStep[];
}

const CASES: RuntimeCase[] = [
  {
    runtime: "claude-code",
    fake: "anthropic",
    baseUrlEnv: "ANTHROPIC_BASE_URL",
    keyEnv: "ANTHROPIC_API_KEY",
    script: [
      { text: "I will write the file.", toolUse: [{ name: "Bash", input: { command: FILE_COMMAND, description: "Write the file" } }] },
      { toolUse: [{ name: "mcp__everything__echo", input: { message: "contract ping" } }] },
      { text: FINAL },
    ],
  },
  {
    runtime: "gemini",
    fake: "gemini",
    baseUrlEnv: "GOOGLE_GEMINI_BASE_URL",
    keyEnv: "GEMINI_API_KEY",
    script: [
      { text: "I will write the file.", toolUse: [{ name: "run_shell_command", input: { command: FILE_COMMAND, description: "Write the file" } }] },
      { toolUse: [{ name: "mcp_everything_echo", input: { message: "contract ping" } }] },
      { text: FINAL },
    ],
  },
  {
    runtime: "codex",
    fake: "openai",
    baseUrlEnv: "OPENAI_BASE_URL",
    keyEnv: "OPENAI_API_KEY",
    script: [
      { text: "I will write the file.", toolUse: [{ name: "exec_command", input: { cmd: FILE_COMMAND } }] },
      { toolUse: [{ name: "mcp__everything__echo", input: { message: "contract ping" } }] },
      { text: FINAL },
    ],
  },
  { runtime: "cursor", keyEnv: "CURSOR_API_KEY", script: [] },
];

/** The run events in order, without the sandbox's own (docker*, proxyAccess) and retries. */
const runEventTypes = (events: Array<{ type: string }>) =>
  events.map((e) => e.type).filter((t) => !t.startsWith("docker") && t !== "proxyAccess" && t !== "providerUsage" && t !== "retry");

describe.skipIf(!docker)("contract: the same expert on every CLI runtime", () => {
  const engine = docker!;
  const fakes = new Map<FakeKind, FakeModel>();
  const workspaces: string[] = [];
  let standinBase = "";

  beforeAll(async () => {
    for (const kind of ["anthropic", "gemini", "openai"] as const) fakes.set(kind, await startFakeModel(engine, kind));
    standinBase = await cursorStandinBase(engine);
  });
  afterAll(async () => {
    await Promise.all([...fakes.values()].map((f) => f.stop()));
    for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
  });

  /** Every base URL and key at once: switching runtimes changes nothing but --runtime. */
  const env = () =>
    Object.fromEntries(
      CASES.flatMap((c) => [
        ...(c.baseUrlEnv && c.fake ? [[c.baseUrlEnv, fakes.get(c.fake)!.sandboxUrl]] : []),
        [c.keyEnv, `fake-${c.runtime}-key`],
      ]),
    );

  const results = new Map<string, { types: string[]; tools: string[]; args: unknown[] }>();

  for (const c of CASES) {
    it(`${c.runtime}: completes the scripted conversation with the real CLI`, async () => {
      if (c.fake) await fakes.get(c.fake)!.script(c.script);
      const ws = makeWorkspace(TOML, `perstack-contract-${c.runtime}-`);
      workspaces.push(ws);
      // Only the cursor stand-in needs a different base image: test infrastructure, not configuration.
      const extra = c.runtime === "cursor" ? { PERSTACK_BASE_IMAGE_NODE: standinBase } : {};
      const result = await runCli(["run", "contract", "write contract.txt, then ping", "--runtime", c.runtime], { cwd: ws, env: { ...env(), ...extra } });
      expect(result.exitCode, result.all).toBe(0);

      expect(readFileSync(join(ws, "contract.txt"), "utf8")).toBe("contract\n");
      const [job] = readJobs(ws);
      expect(job!.job.status).toBe("completed");
      expect(job!.job.usage.totalTokens).toBeGreaterThan(0);
      // A well-behaved CLI's stream raises no sandbox warning: every line it prints is one the collector accepts.
      expect(job!.events.filter((e) => e.type === "sandboxWarning")).toEqual([]);
      const final = job!.checkpoints.find((cp) => cp.status === "completed")!;
      expect(JSON.stringify(final.messages.at(-1))).toContain(FINAL);

      // Telemetry is off: the only host any request went to is the configured upstream.
      const access = job!.events.filter((e) => e.type === "proxyAccess");
      if (c.fake) expect(access.length).toBeGreaterThan(0);
      expect(access.every((e) => e.action === "allowed" && e.reason === "configured-upstream")).toBe(true);
      if (c.runtime === "cursor") {
        const seen = JSON.parse(readFileSync(join(ws, ".cursor-standin.json"), "utf8"));
        expect(seen.argv.slice(0, 10)).toEqual(["-p", "--output-format", "stream-json", "--force", "--trust", "--approve-mcps", "--model", "auto", "--workspace", "/workspace"]);
        expect(seen.argv[10]).toContain("Follow the user's request exactly.");
        expect(seen.argv[10]).toMatch(/write contract.txt, then ping$/);
        // Installed once per package spec (plan/sandbox-plan.ts skillInstallDir), served under the skill's name.
        expect(seen.mcp).toEqual({ mcpServers: { everything: { command: expect.stringMatching(/^\/opt\/perstack\/skills\/modelcontextprotocol_server-everything[^/]*-[0-9a-f]{8}\/entry$/), args: [], env: {} } } });
        expect(seen.envNames).toContain("CURSOR_API_KEY");
        expect(seen.envNames).not.toContain("ANTHROPIC_API_KEY");
        expect(seen.uid).toBe(1000);
      }

      // As Perstack's tools read them: events.jsonl writes a call's args once (in its message), read back whole.
      const calls = job!.events.flatMap((e) => (e.type === "callTools" ? (wholeToolCalls(e).toolCalls as Array<{ skillName: string; toolName: string; args: unknown; normalized?: { toolName: string; args: unknown } }>) : []));
      results.set(c.runtime, {
        types: runEventTypes(job!.events),
        tools: calls.map((call) => (call.normalized ? call.normalized.toolName : `${call.skillName}/${call.toolName}`)),
        args: calls.map((call) => (call.normalized ? call.normalized.args : call.args)),
      });
      expect(existsSync(join(ws, "perstack", "jobs"))).toBe(true);
    });
  }

  it("yields the same event sequence, tool names and argument shapes on every runtime", () => {
    const expected = {
      types: [
        "initializeRuntime", "startRun",
        "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
        "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
        "startGeneration", "completeRun",
      ],
      tools: ["exec", "everything/echo"],
      args: [{ command: FILE_COMMAND }, { message: "contract ping" }],
    };
    for (const c of CASES) expect(results.get(c.runtime), c.runtime).toEqual(expected);
  });
});
