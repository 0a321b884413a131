// Issue 9, done-when 1 and 2: perstack.toml files in the forms Perstack publishes plan unedited (fixtures in
// test/fixtures/perstack-compat, written for this project), with warnings for what is dropped; Perstack's run flags
// reach the plan and beat perstack.toml. Planning only: no Docker.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { describe, expect, it } from "vitest";
import { ConfigSchemaError, InvalidOptionError, MissingEnvError } from "../../../src/errors.js";
import { prepareRun, type RunRequest } from "../../../src/job/prepare-run.js";
import type { SandboxPlan } from "../../../src/plan/sandbox-plan.js";

const FIXTURES = new URL("../../fixtures/perstack-compat/", import.meta.url).pathname;
const BASE_IMAGES = {
  debian: { role: "debian" as const, ref: "debian:bookworm-slim" },
  node: { role: "node" as const, ref: "node:22-bookworm-slim" },
};

function projectWith(toml: string, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-compat-"));
  writeFileSync(join(dir, "perstack.toml"), toml);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

function prepare(cwd: string, expertKey: string, extra: Partial<RunRequest> = {}) {
  return prepareRun({ expertKey, query: "q", cwd, envNames: [], caCertFiles: [], processEnv: {}, secrets: "warn", user: { uid: 1000, gid: 1000 }, ...extra }, BASE_IMAGES);
}

function engineInput(plan: SandboxPlan): Record<string, unknown> {
  const file = plan.agent.homeFiles.find((f) => f.path === ".perstack/engine-input.json")!;
  return JSON.parse(file.content) as Record<string, unknown>;
}

const fixtureFiles = readdirSync(FIXTURES).filter((f) => f.endsWith(".toml"));
const cases = fixtureFiles.flatMap((file) =>
  Object.keys((parseToml(readFileSync(join(FIXTURES, file), "utf8")) as { experts: Record<string, unknown> }).experts).map((expert) => [file, expert] as const),
);

describe("Perstack's published forms plan unedited (--dry-run, no secrets)", () => {
  it.each(cases.filter(([, expert]) => expert !== "lost-delegate"))("%s: %s", (file, expert) => {
    const cwd = mkdtempSync(join(tmpdir(), "perstack-compat-"));
    cpSync(join(FIXTURES, file), join(cwd, "perstack.toml"));
    const prepared = prepare(cwd, expert);
    expect(prepared.plan.expert.key).toBe(expert);
    // Nothing a real run needs is silently absent: each missing variable is named in a warning.
    for (const entry of prepared.plan.agent.env) {
      if (entry.source !== "host" || entry.optional) continue;
      expect(prepared.warnings.some((w) => w.startsWith(`${entry.from.join(" or ")} is not set`)), entry.name).toBe(true);
    }
  });

  it("warns, by key path, about each key Perstack drops or this project does not use", () => {
    const cwd = projectWith(readFileSync(join(FIXTURES, "interactive-and-mixed.toml"), "utf8"));
    const { warnings } = prepare(cwd, "coordinator");
    expect(warnings).toContain('experts."coordinator".skills."user-input".tools."askUser".name: unknown key, ignored; remove it (see perstack.toml.example or `perstack schema` for the accepted keys)');
    expect(warnings).toContain('experts."coordinator".skills."search".lazyInit: accepted for Perstack compatibility but not used by this version');
    expect(warnings).toContain("SEARCH_API_KEY is not set (needed as experts.\"coordinator\".skills.\"search\".requiredEnv); a real run would stop here: export it or put it in .env next to " + join(cwd, "perstack.toml"));
    const provider = prepare(projectWith(readFileSync(join(FIXTURES, "envpath-under-provider.toml"), "utf8")), "greeter");
    expect(provider.warnings[0]).toMatch(/^provider\.envPath: envPath belongs at the top level, above \[provider\]/);
    expect(provider.loaded.file.envPath).toEqual([".env", ".env.local"]);
    expect(provider.plan.runtime.name).toBe("local");
  });

  it("shows an expert's warnings only when that expert takes part in the run", () => {
    const cwd = projectWith(readFileSync(join(FIXTURES, "scoped-and-network.toml"), "utf8"));
    expect(prepare(cwd, "@acme/issue-bot").warnings.some((w) => w.includes("lazyInit"))).toBe(true);
    expect(prepare(cwd, "broken-server").warnings.some((w) => w.includes("lazyInit"))).toBe(false);
  });

  it("serves the base skill named @perstack/base from the engine, and gives CLI runtimes safe server names", () => {
    const cwd = projectWith(readFileSync(join(FIXTURES, "scoped-and-network.toml"), "utf8"));
    const input = engineInput(prepare(cwd, "@acme/issue-bot").plan) as { experts: Record<string, { skills: Array<{ type: string; name: string }> }> };
    expect(input.experts["@acme/issue-bot"]!.skills.map((s) => [s.type, s.name])).toEqual([["mcpStdio", "@acme/issue-tools"], ["base", "@perstack/base"]]);
    const claude = prepare(cwd, "@acme/issue-bot", { runtime: "claude-code" }).plan;
    const mcp = JSON.parse(claude.agent.command[claude.agent.command.indexOf("--mcp-config") + 1]!) as { mcpServers: Record<string, { command: string }> };
    expect(Object.keys(mcp.mcpServers)).toEqual(["acme-issue-tools"]);
    expect(mcp.mcpServers["acme-issue-tools"]!.command).toMatch(/^\/opt\/perstack\/skills\/acme_issue-tools-[0-9a-f]{8}\/entry$/);
  });

  it("fails only the expert whose delegate does not exist, naming it, as Perstack does", () => {
    const cwd = projectWith(readFileSync(join(FIXTURES, "no-provider.toml"), "utf8"));
    expect(() => prepare(cwd, "lost-delegate")).toThrow(ConfigSchemaError);
    expect(() => prepare(cwd, "lost-delegate")).toThrow(/experts\."lost-delegate"\.delegates\[0\]: "nonexistent-expert" names no expert/);
    expect(prepare(cwd, "short-answer").plan.expert.key).toBe("short-answer");
  });

  it("errors on a missing required key whose misspelling is present, naming both", () => {
    const cwd = projectWith(`[experts."a"]\ninstuction = "hi"\n`);
    expect(() => prepare(cwd, "a")).toThrow('experts."a".instruction: is required; did you mean to write "instruction" instead of "instuction"?');
  });

  it("PERSTACK_STORAGE_PATH, as in Perstack, moves where runs record their jobs", () => {
    const cwd = projectWith(`[experts."a"]\ninstruction = "hi"\n`);
    expect(prepare(cwd, "a").perstackDir).toBe(join(cwd, "perstack"));
    expect(prepare(cwd, "a", { processEnv: { PERSTACK_STORAGE_PATH: "store" } }).perstackDir).toBe(join(cwd, "store"));
  });

  it("a real run still refuses a missing secret before anything starts", () => {
    const cwd = projectWith(`[experts."a"]\ninstruction = "hi"\n`);
    expect(() => prepare(cwd, "a", { secrets: "require" })).toThrow(MissingEnvError);
  });
});

describe("Perstack's run flags beat perstack.toml, which beats the default", () => {
  const toml = `runtime = "claude-code"
maxSteps = 40
maxRetries = 4
timeout = 120000
reasoningBudget = "low"
envPath = [".env.file"]
[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "https://gateway.example.com"
[experts."a"]
instruction = "hi"
`;
  const envOf = (plan: SandboxPlan, name: string) => plan.agent.env.find((e) => e.name === name);
  const argAfter = (plan: SandboxPlan, flag: string) => plan.agent.command[plan.agent.command.indexOf(flag) + 1];

  it("--max-steps", () => {
    const cwd = projectWith(toml);
    expect(argAfter(prepare(cwd, "a").plan, "--max-turns")).toBe("40");
    expect(argAfter(prepare(cwd, "a", { flags: { maxSteps: 3 } }).plan, "--max-turns")).toBe("3");
    expect(argAfter(prepare(projectWith(`runtime = "claude-code"\n[experts."a"]\ninstruction = "hi"\n`), "a").plan, "--max-turns")).toBe("100");
    expect((engineInput(prepare(cwd, "a", { runtime: "perstack", flags: { maxSteps: 3 } }).plan) as { maxSteps: number }).maxSteps).toBe(3);
  });

  it("--max-retries", () => {
    const cwd = projectWith(toml);
    expect(envOf(prepare(cwd, "a").plan, "CLAUDE_CODE_MAX_RETRIES")).toMatchObject({ value: "4" });
    expect(envOf(prepare(cwd, "a", { flags: { maxRetries: 0 } }).plan, "CLAUDE_CODE_MAX_RETRIES")).toMatchObject({ value: "0" });
    expect((engineInput(prepare(cwd, "a", { runtime: "perstack", flags: { maxRetries: 1 } }).plan) as { maxRetries: number }).maxRetries).toBe(1);
  });

  it("--timeout (milliseconds per generation)", () => {
    const cwd = projectWith(toml);
    expect(envOf(prepare(cwd, "a").plan, "API_TIMEOUT_MS")).toMatchObject({ value: "120000" });
    expect(envOf(prepare(cwd, "a", { flags: { timeout: 5000 } }).plan, "API_TIMEOUT_MS")).toMatchObject({ value: "5000" });
    expect((engineInput(prepare(cwd, "a", { runtime: "perstack", flags: { timeout: 5000 } }).plan) as { timeout: number }).timeout).toBe(5000);
  });

  it("--reasoning-budget", () => {
    const cwd = projectWith(toml);
    expect(envOf(prepare(cwd, "a").plan, "MAX_THINKING_TOKENS")).toMatchObject({ value: "4096" });
    expect(envOf(prepare(cwd, "a", { flags: { reasoningBudget: "high" } }).plan, "MAX_THINKING_TOKENS")).toMatchObject({ value: "31999" });
    expect(envOf(prepare(cwd, "a", { flags: { reasoningBudget: 2048 } }).plan, "MAX_THINKING_TOKENS")).toMatchObject({ value: "2048" });
    expect((engineInput(prepare(cwd, "a", { runtime: "perstack", flags: { reasoningBudget: "minimal" } }).plan) as { reasoningBudget: string }).reasoningBudget).toBe("minimal");
  });

  it("--provider: another provider drops the file's [provider.setting] with a warning; the same one keeps it", () => {
    const cwd = projectWith(toml);
    const same = prepare(cwd, "a", { runtime: "perstack", flags: { provider: "anthropic" } });
    expect(same.plan.provider).toBe("anthropic");
    expect(same.plan.gateway?.config.upstream).toBe("https://gateway.example.com");
    const other = prepare(cwd, "a", { runtime: "perstack", model: "gpt-5", flags: { provider: "openai" } });
    expect(JSON.stringify(other.plan)).not.toContain("gateway.example.com");
    expect(other.plan.gateway?.config.upstream).toBe("https://api.openai.com");
    expect(other.plan.provider).toBe("openai");
    expect(other.plan.agent.env.map((e) => e.name)).toContain("OPENAI_API_KEY");
    expect(other.plan.agent.env.map((e) => e.name)).not.toContain("ANTHROPIC_API_KEY");
    expect(other.plan.gateway?.credentials.map((k) => k.name)).toEqual(["OPENAI_API_KEY"]);
    expect(other.warnings).toContain(`--provider openai: [provider.setting] in ${join(cwd, "perstack.toml")} belongs to provider anthropic and is not used`);
    expect(() => prepare(cwd, "a", { flags: { provider: "opneai" } })).toThrow('--provider "opneai" is not a provider (did you mean "openai"?)');
  });

  it("--env-path: files relative to where the command runs, beating envPath; the real environment beats both", () => {
    const cwd = projectWith(toml, { ".env.file": "ANTHROPIC_API_KEY=from-file\n" });
    mkdirSync(join(cwd, "sub"));
    writeFileSync(join(cwd, "sub", "flag.env"), "ANTHROPIC_API_KEY=from-flag\n");
    // The real key goes to the provider gateway; the agent gets the run's token.
    const fromFile = prepare(cwd, "a", { secrets: "require" });
    expect(fromFile.gatewayEnv.ANTHROPIC_API_KEY).toBe("from-file");
    expect(fromFile.envValues.ANTHROPIC_API_KEY).toBe(fromFile.gatewayEnv.PERSTACK_GATEWAY_TOKEN);
    const sub = join(cwd, "sub");
    const viaFlag = prepare(sub, "a", { secrets: "require", flags: { envPath: ["flag.env"] } });
    expect(viaFlag.gatewayEnv.ANTHROPIC_API_KEY).toBe("from-flag");
    expect(prepare(sub, "a", { secrets: "require", flags: { envPath: ["flag.env"] }, processEnv: { ANTHROPIC_API_KEY: "from-env" } }).gatewayEnv.ANTHROPIC_API_KEY).toBe("from-env");
    expect(() => prepare(sub, "a", { secrets: "require", flags: { envPath: ["missing.env"] } })).toThrow(MissingEnvError);
  });

  it("--job-id names the new job; a taken or unsafe id is refused", () => {
    const cwd = projectWith(toml);
    expect(prepare(cwd, "a", { jobId: "nightly-42" }).plan.jobId).toBe("nightly-42");
    mkdirSync(join(cwd, "perstack", "jobs", "nightly-42"), { recursive: true });
    expect(() => prepare(cwd, "a", { jobId: "nightly-42" })).toThrow(/--job-id nightly-42: that job already exists .*; continue it with --continue-job nightly-42/);
    expect(() => prepare(cwd, "a", { jobId: "../escape" })).toThrow(InvalidOptionError);
  });
});

describe("provider headers through the gateway", () => {
  it("reach the gateway's environment as PERSTACK_GATEWAY_HEADERS, not the agent's", () => {
    const cwd = projectWith(`[provider]\nproviderName = "anthropic"\n[provider.setting]\nheaders = { "x-team-token" = "hdr-secret-42" }\n[experts."a"]\ninstruction = "hi"\n`);
    const prepared = prepare(cwd, "a", { processEnv: { ANTHROPIC_API_KEY: "k" }, secrets: "require" });
    expect(JSON.parse(prepared.gatewayEnv.PERSTACK_GATEWAY_HEADERS!)).toEqual({ "x-team-token": "hdr-secret-42" });
    expect(JSON.stringify(prepared.envValues)).not.toContain("hdr-secret-42");
    expect(JSON.stringify(prepared.plan)).not.toContain("hdr-secret-42");
  });
});
