// Issue 10: the provider gateway on every runtime that can use it. Each run's agent tries to find the provider key
// from inside the sandbox (its environment, every process's /proc/<pid>/environ, files) and sends what it saw back
// to the model: the fake's request log must hold the token the agent was given and never the real key. The
// gateway's meter must equal what the fake reported for every call, and a spent budget must stop a run.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { costOf, loadPriceTable } from "../../src/gateway/pricing.js";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { startFakeModel, type FakeKind, type FakeModel, type FakeStep } from "../support/fake-model-container.js";

const docker = await requireDocker();

const REAL_KEY = `sk-real-${randomBytes(16).toString("hex")}`;
/** A piece of the key to search files for, without putting the whole key on the agent's command line. */
const KEY_PIECE = REAL_KEY.slice(8, 24);
const MARK = "perstack-dump-done";
const DUMP = [
  "env",
  "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\" 2>/dev/null; done",
  // The piece is joined only in the shell, so transcripts of this very command (which CLIs keep in HOME, and the
  // run's record in perstack/) do not match; the marker is computed for the same reason.
  `a=${KEY_PIECE.slice(0, 8)}; b=${KEY_PIECE.slice(8)}; grep -rsIl "$a$b" /home /tmp /etc /opt /workspace /root 2>/dev/null | sed "s/^/FOUND-$((1+1))-FILE /"`,
  `echo ${MARK}`,
].join("; ");

interface Case {
  runtime: "perstack" | "claude-code" | "gemini" | "codex";
  fake: FakeKind;
  baseUrlEnv: string;
  keyEnv: string;
  model: string;
  shell: FakeStep;
  toml: string;
}

const EXPERT = `[experts."probe"]\ndescription = "Probe"\ninstruction = "Do what you are asked."\n`;

const CASES: Case[] = [
  {
    runtime: "perstack",
    fake: "anthropic",
    baseUrlEnv: "ANTHROPIC_BASE_URL",
    keyEnv: "ANTHROPIC_API_KEY",
    model: "claude-sonnet-4-5",
    shell: { toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", DUMP] } }] },
    toml: `maxRetries = 0\n[provider]\nproviderName = "anthropic"\n${EXPERT}`,
  },
  {
    runtime: "claude-code",
    fake: "anthropic",
    baseUrlEnv: "ANTHROPIC_BASE_URL",
    keyEnv: "ANTHROPIC_API_KEY",
    model: "claude-sonnet-4-5",
    shell: { toolUse: [{ name: "Bash", input: { command: DUMP, description: "Look around" } }] },
    toml: `maxRetries = 0\n${EXPERT}`,
  },
  {
    runtime: "gemini",
    fake: "gemini",
    baseUrlEnv: "GOOGLE_GEMINI_BASE_URL",
    keyEnv: "GEMINI_API_KEY",
    model: "gemini-2.5-pro",
    shell: { toolUse: [{ name: "run_shell_command", input: { command: DUMP, description: "Look around" } }] },
    toml: `maxRetries = 0\n${EXPERT}`,
  },
  {
    runtime: "codex",
    fake: "openai",
    baseUrlEnv: "OPENAI_BASE_URL",
    keyEnv: "OPENAI_API_KEY",
    model: "gpt-5",
    shell: { toolUse: [{ name: "exec_command", input: { cmd: DUMP } }] },
    toml: `maxRetries = 0\n${EXPERT}`,
  },
];

describe.skipIf(!docker)("the provider gateway: keys stay outside, one meter, budgets", () => {
  const fakes = new Map<FakeKind, FakeModel>();
  beforeAll(async () => {
    for (const kind of ["anthropic", "gemini", "openai"] as const) fakes.set(kind, await startFakeModel(docker!, kind));
  }, 900_000);
  afterAll(async () => {
    await Promise.all([...fakes.values()].map((f) => f.stop()));
  });

  it.each(CASES)("$runtime: the real key is readable nowhere in the sandbox, and metered usage equals the model's", async (c) => {
    const fake = fakes.get(c.fake)!;
    await fake.script([c.shell, { text: "Looked around." }]);
    const ws = makeWorkspace(c.toml, "perstack-gateway-");
    const env = { [c.keyEnv]: REAL_KEY, [c.baseUrlEnv]: fake.sandboxUrl };
    const result = await runCli(["run", "probe", "Look around", "--runtime", c.runtime], { cwd: ws, env, timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(0);

    const requests = await fake.requests();
    const seen = JSON.stringify(requests.map((r) => r.body));
    // The dump ran and went back to the model...
    expect(seen).toContain(MARK);
    // ...with the token where the key would be, and the key nowhere: not in the environment, not in a file.
    // (Gemini CLI scrubs variables named like keys from its shell's environment; the others show the token.)
    if (c.runtime !== "gemini") expect(seen).toMatch(new RegExp(`${c.keyEnv}=[0-9a-f]{64}`));
    expect(seen).not.toContain(REAL_KEY);
    // (KEY_PIECE itself is in the command the model sent, so only a file listing would show a leak.)
    expect(seen).not.toContain("FOUND-2-FILE");

    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    const metered = (job!.job as unknown as { metered: { requests: number; usage: Record<string, number>; costUsd: number | null; pricing: { sha256: string } } }).metered;
    const reported = requests.filter((r) => r.usage);
    expect(metered.requests).toBeGreaterThanOrEqual(reported.length);
    expect(metered.usage.inputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.inputTokens, 0));
    expect(metered.usage.outputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.outputTokens, 0));
    // Cached and cache-write tokens, in each protocol's own fields.
    const vendorCount = (r: (typeof reported)[number], ...path: string[]) =>
      Number(path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], r.usage!.vendor) ?? 0);
    const cached = { anthropic: ["cache_read_input_tokens"], openai: ["input_tokens_details", "cached_tokens"], gemini: ["cachedContentTokenCount"] }[c.fake];
    expect(metered.usage.cachedInputTokens).toBe(reported.reduce((sum, r) => sum + vendorCount(r, ...cached), 0));
    const cacheWrite = c.fake === "anthropic" ? reported.reduce((sum, r) => sum + vendorCount(r, "cache_creation_input_tokens"), 0) : 0;
    expect(metered.usage.cacheWriteTokens).toBe(cacheWrite);
    const table = loadPriceTable();
    const events = job!.events.filter((e) => e.type === "providerUsage" && e.usage) as unknown as Array<{ model?: string; usage: Parameters<typeof costOf>[1] }>;
    expect(events.length).toBe(reported.length);
    const expectedCost = events.reduce((sum, e) => sum + (costOf(e.model ?? c.model, e.usage, table) ?? Number.NaN), 0);
    expect(metered.costUsd).toBeCloseTo(expectedCost, 10);
    expect(metered.pricing.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Nothing of the key in what perstack wrote either.
    const jobDir = join(ws, "perstack", "jobs", job!.jobId);
    expect(readFileSync(join(jobDir, "job.json"), "utf8")).not.toContain(REAL_KEY);
    for (const run of job!.runs) expect(JSON.stringify(run.events) + run.raw).not.toContain(REAL_KEY);
  }, 900_000);

  const budgetCases: Array<[string, FakeKind, string, string, FakeStep]> = [
    ["perstack", "anthropic", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", { toolUse: [{ name: "healthCheck", input: {} }] }],
    ["claude-code", "anthropic", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", { toolUse: [{ name: "Bash", input: { command: "echo hi", description: "say hi" } }] }],
  ];
  it("perstack: a spent --max-cost budget stops the run, priced with the shipped table", async () => {
    const fake = fakes.get("anthropic")!;
    const step: FakeStep = { toolUse: [{ name: "healthCheck", input: {} }] };
    await fake.script([step, step, step, { text: "never" }]);
    const ws = makeWorkspace(`maxRetries = 0\n[provider]\nproviderName = "anthropic"\n${EXPERT}`, "perstack-gateway-");
    const env = { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: fake.sandboxUrl };
    const result = await runCli(["run", "probe", "Loop", "--runtime", "perstack", "--max-cost", "0.000001"], { cwd: ws, env, timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(1);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    const stop = job!.events.find((e) => e.type === "stopRunByError") as { error?: { name: string; message: string } } | undefined;
    expect(stop?.error).toMatchObject({ name: "BudgetExceeded" });
    expect(stop?.error?.message).toContain("--max-cost budget");
    const metered = (job!.job as unknown as { metered: { costUsd: number } }).metered;
    expect(metered.costUsd).toBeGreaterThan(0.000001);
    // The first call spent the budget; the gateway refused the next one without asking the model.
    expect((await fake.requests()).filter((r) => r.kind === "main")).toHaveLength(1);
  }, 900_000);

  it.each(budgetCases)("%s: a spent --max-tokens budget stops the run as stoppedByError (BudgetExceeded)", async (runtime, kind, baseUrlEnv, keyEnv, step) => {
    const fake = fakes.get(kind)!;
    await fake.script([step, step, step, { text: "never" }]);
    const ws = makeWorkspace(`maxRetries = 0\n${EXPERT}`, "perstack-gateway-");
    const env = { [keyEnv]: REAL_KEY, [baseUrlEnv]: fake.sandboxUrl };
    const result = await runCli(["run", "probe", "Loop", "--runtime", runtime, "--max-tokens", "1"], { cwd: ws, env, timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(1);
    expect(result.all).toContain("--max-tokens");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    const stop = job!.events.find((e) => e.type === "stopRunByError") as { error?: { name: string; message: string } } | undefined;
    expect(stop?.error?.name).toBe("BudgetExceeded");
    expect(stop?.error?.message).toContain("--max-tokens budget");
    const containers = await docker!.listContainers({ all: true, filters: { label: [`perstack.job=${job!.jobId}`] } });
    expect(containers).toEqual([]);
  }, 900_000);
});
