// Perstack's run flags and --dry-run as a user types them (the built CLI, no Docker: dry runs only plan).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../../support/cli.js";

const TOML = `runtime = "claude-code"
maxSteps = 40
[provider]
providerName = "anthropic"
envPath = [".env"]
[experts."a"]
instruction = "hi"
[experts."a".skills."@perstack/base"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@perstack/base"
[experts."a".skills."ask"]
type = "interactiveSkill"
[experts."a".skills."ask".tools.askUser]
name = "askUser"
inputJsonSchema = '{"type":"object"}'
`;

function project(toml = TOML): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-flags-cli-"));
  writeFileSync(join(dir, "perstack.toml"), toml);
  return dir;
}

describe("perstack run: Perstack's flags and --dry-run", () => {
  it("--dry-run without any key prints the plan, warns about each missing variable by name, and exits 0", async () => {
    const cwd = project();
    const result = await runCli(["run", "a", "q", "--dry-run", "--max-steps", "3", "--reasoning-budget", "2048", "--timeout", "9000", "--max-retries", "0"], { cwd, env: { ANTHROPIC_API_KEY: undefined } });
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout) as { agent: { command: string[]; env: Array<{ name: string; value?: string }> } };
    expect(plan.agent.command[plan.agent.command.indexOf("--max-turns") + 1]).toBe("3");
    const env = Object.fromEntries(plan.agent.env.map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ MAX_THINKING_TOKENS: "2048", API_TIMEOUT_MS: "9000", CLAUDE_CODE_MAX_RETRIES: "0" });
    expect(result.stdout).not.toContain("sk-");
    const warnings = result.stderr.split("\n").filter(Boolean);
    expect(warnings).toContain(`warning: ANTHROPIC_API_KEY is not set (needed as provider anthropic key, held by the provider gateway); a real run would stop here: export it or put it in .env next to ${join(cwd, "perstack.toml")}`);
    expect(warnings.some((w) => w.startsWith("warning: provider.envPath: envPath belongs at the top level"))).toBe(true);
    expect(warnings.some((w) => w.startsWith('warning: experts."a".skills."ask".tools."askUser".name: unknown key, ignored'))).toBe(true);
    for (const line of warnings) expect(line).toMatch(/^warning: /);
  });

  it("refuses bad flag values with one line and exit code 2", async () => {
    const cwd = project();
    const cases: Array<[string[], RegExp]> = [
      [["--reasoning-budget", "huge"], /--reasoning-budget.*none, minimal, low, medium, high or a token count/],
      [["--max-steps", "0"], /--max-steps.*positive whole number/],
      [["--max-retries", "-1"], /--max-retries/],
      [["--timeout", "soon"], /--timeout.*positive whole number/],
      [["--provider", "antropic"], /--provider "antropic" is not a provider \(did you mean "anthropic"\?\)/],
      [["--job-id", "a/b"], /--job-id "a\/b": use 1 to 128 letters/],
      [["--job-id", "x", "--continue"], /--job-id names a new job/],
    ];
    for (const [flags, message] of cases) {
      const result = await runCli(["run", "a", "q", "--dry-run", ...flags], { cwd });
      expect(result.exitCode, `${flags.join(" ")}: ${result.stderr}`).toBe(2);
      expect(result.stderr.trim().split("\n"), flags.join(" ")).toHaveLength(1);
      expect(result.stderr, flags.join(" ")).toMatch(message);
    }
  });

  it("--env-path is repeatable; the key found there is not missing, and its value is never printed", async () => {
    const cwd = project();
    writeFileSync(join(cwd, "one.env"), "ANTHROPIC_API_KEY=value-one-qq\n");
    writeFileSync(join(cwd, "two.env"), "ANTHROPIC_API_KEY=value-two-qq\n");
    const result = await runCli(["run", "a", "q", "--dry-run", "--env-path", "one.env", "--env-path", "two.env"], { cwd, env: { ANTHROPIC_API_KEY: undefined } });
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stderr).not.toContain("ANTHROPIC_API_KEY is not set");
    // Values are never printed, only names.
    expect(result.stdout).not.toContain("value-two-qq");
    expect(result.stdout).not.toContain("value-one-qq");
  });

  it("runtime = \"local\" and --runtime local are the built-in runtime", async () => {
    const cwd = project(`runtime = "local"\n[experts."a"]\ninstruction = "hi"\n`);
    const fromFile = await runCli(["run", "a", "q", "--dry-run"], { cwd });
    expect(fromFile.exitCode, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout).runtime).toMatchObject({ name: "local", source: "config" });
    const fromFlag = await runCli(["run", "a", "q", "--dry-run", "--runtime", "local"], { cwd: project(`[experts."a"]\ninstruction = "hi"\n`) });
    expect(JSON.parse(fromFlag.stdout).runtime).toMatchObject({ name: "local", source: "flag" });
  });
});
