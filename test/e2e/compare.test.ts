// Issue 11: `perstack compare` runs one Expert on perstack, claude-code, gemini and codex against the fake model
// servers, twice each, with a check. Every run edits notes.md in its own copy of the workspace; the user's workspace
// stays byte for byte as it was; the report shows each run's diff; --from rebuilds the same comparison from the jobs;
// a runtime without its key is skipped and the rest completes.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Comparison } from "../../src/compare/comparison.js";
import { makeWorkspace, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { startFakeModel, type FakeKind, type FakeModel, type FakeStep } from "../support/fake-model-container.js";

const docker = await requireDocker();

const EXPERT = `[experts."editor"]\ndescription = "Edits notes"\ninstruction = "Edit notes.md as asked."\n`;
const shell = (runtime: string): string => `printf 'hello from ${runtime}\\n' > notes.md`;

/** Per runtime: the protocol its model speaks here and the tool call that edits notes.md. */
const SCRIPTS: Record<string, { fake: FakeKind; steps: FakeStep[] }> = {
  // perstack runs perstack.toml's provider, deepseek (OpenAI Chat Completions), so its script is its own.
  perstack: { fake: "chat", steps: [{ toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", shell("perstack")] } }] }, { text: "Edited by perstack." }] },
  "claude-code": { fake: "anthropic", steps: [{ toolUse: [{ name: "Bash", input: { command: shell("claude-code"), description: "edit" } }] }, { text: "Edited by claude-code." }] },
  gemini: { fake: "gemini", steps: [{ toolUse: [{ name: "run_shell_command", input: { command: shell("gemini"), description: "edit" } }] }, { text: "Edited by gemini." }] },
  codex: { fake: "openai", steps: [{ toolUse: [{ name: "exec_command", input: { cmd: shell("codex") } }] }, { text: "Edited by codex." }] },
};

/** Every file under `dir` (perstack/ aside) with its content's hash: what "byte for byte unchanged" compares. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      const rel = relative(dir, path);
      if (rel === "perstack") continue;
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else out[rel] = `${stat.mode.toString(8)} ${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
    }
  };
  walk(dir);
  return out;
}

describe.skipIf(!docker)("perstack compare", () => {
  let fake: FakeModel;
  let ws: string;
  let before: Record<string, string>;
  let comparison: Comparison;
  let outDir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    fake = await startFakeModel(docker!, "anthropic");
    for (const { fake: kind, steps } of Object.values(SCRIPTS)) await fake.as(kind).script(steps);
    ws = makeWorkspace(`maxRetries = 0\nmodel = "deepseek-chat"\n[provider]\nproviderName = "deepseek"\n[provider.setting]\nbaseUrl = "${fake.sandboxUrl}"\n${EXPERT}`, "perstack-compare-");
    writeFileSync(join(ws, "notes.md"), "original notes\n");
    writeFileSync(join(ws, ".env"), "SECRET_FROM_ENV_FILE=do-not-copy\n");
    before = snapshot(ws);
    env = {
      DEEPSEEK_API_KEY: "sk-deepseek-test",
      ANTHROPIC_API_KEY: "sk-ant-test",
      ANTHROPIC_BASE_URL: fake.sandboxUrl,
      GEMINI_API_KEY: "gemini-test",
      GOOGLE_GEMINI_BASE_URL: fake.sandboxUrl,
      OPENAI_API_KEY: "sk-openai-test",
      OPENAI_BASE_URL: fake.sandboxUrl,
    };
    const result = await runCli(
      ["compare", "editor", "Edit the notes", "--runtimes", "perstack,claude-code,gemini,codex", "--repeat", "2", "--concurrency", "4", "--check", "grep -q 'hello from c' notes.md", "--json"],
      { cwd: ws, env, timeoutMs: 1_500_000 },
    );
    expect(result.exitCode, result.all).toBe(0);
    comparison = JSON.parse(result.stdout) as Comparison;
    const dirs = readdirSync(join(ws, "perstack", "comparisons"));
    expect(dirs).toEqual([comparison.id]);
    outDir = join(ws, "perstack", "comparisons", comparison.id);
  }, 1_800_000);
  afterAll(async () => {
    await fake?.stop();
  });

  it("runs each runtime twice, each run editing notes.md in its own copy, and leaves the user's workspace as it was", () => {
    expect(snapshot(ws)).toEqual(before);
    expect(comparison.skipped).toEqual([]);
    expect(comparison.runs.map((r) => `${r.runtime}#${r.repeat}`).sort()).toEqual(
      ["perstack", "claude-code", "gemini", "codex"].flatMap((r) => [`${r}#0`, `${r}#1`]).sort(),
    );
    for (const run of comparison.runs) {
      expect(run.status, `${run.runtime}: ${run.error ?? ""}`).toBe("completed");
      expect(readFileSync(join(outDir, run.workspaceDir!, "notes.md"), "utf8")).toBe(`hello from ${run.runtime}\n`);
      // The env file (secrets) was never copied into a run's workspace.
      expect(() => statSync(join(outDir, run.workspaceDir!, ".env"))).toThrow();
      expect(run.changes?.files).toEqual([{ path: "notes.md", status: "modified", kind: "text", bytesBefore: 15, bytesAfter: `hello from ${run.runtime}\n`.length, added: 1, removed: 1 }]);
      expect(run.changes?.patch).toContain(`-original notes\n+hello from ${run.runtime}\n`);
      expect(run.toolCalls.exec).toBe(1);
      expect(run.finalAnswer).toBe(`Edited by ${run.runtime}.`);
      // Every run is a normal job, which `perstack log` can show.
      expect(statSync(join(ws, "perstack", "jobs", run.jobId, "job.json")).isFile()).toBe(true);
    }
  });

  it("records the check per run: it passes where the edit says 'hello from c…'", () => {
    for (const run of comparison.runs) {
      const expected = run.runtime === "claude-code" || run.runtime === "codex";
      expect(run.check, run.runtime).toMatchObject({ command: "grep -q 'hello from c' notes.md", passed: expected, exitCode: expected ? 0 : 1, timedOut: false });
    }
    const summary = Object.fromEntries(comparison.summary.map((s) => [s.runtime, s]));
    expect(summary.codex!.checksPassed).toBe(2);
    expect(summary.gemini!.checksPassed).toBe(0);
  });

  it("gives medians and spreads over the repeats, and costs where they are metered", () => {
    for (const summary of comparison.summary) {
      expect(summary.runs).toBe(2);
      expect(summary.wallTimeMs.min).toBeLessThanOrEqual(summary.wallTimeMs.median);
      expect(summary.wallTimeMs.median).toBeLessThanOrEqual(summary.wallTimeMs.max);
      expect(summary.wallTimeMs.min).toBeGreaterThan(0);
      expect(summary.inputTokens.median).toBeGreaterThan(0);
    }
    // claude-code, gemini and codex go through the gateway with priced models; deepseek-chat is not in the table.
    const codex = comparison.runs.find((r) => r.runtime === "codex")!;
    expect(codex.costSource).toBe("metered");
    expect(codex.costUsd).toBeGreaterThan(0);
    expect(comparison.warnings.join("\n")).toMatch(/claude-code cannot use provider deepseek, so its runs use anthropic/);
  });

  it("prints the table and writes comparison.json and report.html with every run's diff", async () => {
    expect(JSON.parse(readFileSync(join(outDir, "comparison.json"), "utf8"))).toEqual(comparison);
    const html = readFileSync(join(outDir, "report.html"), "utf8");
    for (const run of comparison.runs) expect(html).toContain(`hello from ${run.runtime}`);
    expect(html).not.toMatch(/https?:\/\//);
    const table = await runCli(["compare", "--from", comparison.runs.map((r) => r.jobId).join(",")], { cwd: ws, env });
    expect(table.exitCode, table.all).toBe(0);
    expect(table.stdout).toMatch(/^runtime\s+status\s+wall\s+steps\s+tools\s+in\s+out\s+cached\s+cost\s+retries\s+blocked/m);
    expect(table.stdout).toMatch(/^codex\s+2\/2 passed/m);
    expect(table.stdout).toMatch(/^gemini\s+0\/2 passed/m);
    // Rebuilt beside the comparison, which stays as it was.
    expect(table.stdout).toContain(join(outDir, "from-jobs", "report.html"));
    expect(readFileSync(join(outDir, "report.html"), "utf8")).toBe(html);
  });

  it("--from rebuilds the same comparison from the recorded jobs, in any order", async () => {
    const ids = comparison.runs.map((r) => r.jobId).reverse();
    const out = join(ws, "perstack", "rebuilt");
    const result = await runCli(["compare", "--from", ids.join(","), "--out", out, "--json"], { cwd: ws, env });
    expect(result.exitCode, result.all).toBe(0);
    const rebuilt = JSON.parse(result.stdout) as Comparison;
    expect({ ...rebuilt, fromJobs: false }).toEqual(comparison);
    // The same report, but for the badge that says it was rebuilt.
    const badge = ' <span class="badge">rebuilt from recorded jobs</span>';
    const rebuiltHtml = readFileSync(join(out, "report.html"), "utf8");
    expect(rebuiltHtml).toContain(badge);
    expect(rebuiltHtml.replace(badge, "")).toBe(readFileSync(join(outDir, "report.html"), "utf8"));
  });

  it("reports a runtime without its key as skipped, and compares the rest", async () => {
    const { GEMINI_API_KEY: _gone, ...withoutGemini } = env;
    const result = await runCli(["compare", "editor", "Edit the notes", "--runtimes", "gemini,codex", "--json"], { cwd: ws, env: { ...withoutGemini, GEMINI_API_KEY: "" }, timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(0);
    const skippedOne = JSON.parse(result.stdout) as Comparison;
    expect(skippedOne.skipped).toEqual([{ runtime: "gemini", reason: expect.stringMatching(/GEMINI_API_KEY/) }]);
    expect(skippedOne.runs.map((r) => [r.runtime, r.status])).toEqual([["codex", "completed"]]);
    expect(snapshot(ws)).toEqual(before);
  }, 900_000);
});
