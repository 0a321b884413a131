// The CLI as users meet it: one-line errors with exit codes, --dry-run, and export checked by docker-compose.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { makeWorkspace, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";

const workspaces: string[] = [];
const workspace = (toml: string) => {
  const dir = makeWorkspace(toml, "perstack-cli-");
  workspaces.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
});

const GOOD = `
[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "http://host.docker.internal:11434"
[experts."demo"]
description = "Demo"
instruction = "Say $HOME is \\"home\\"."
delegates = ["helper"]
[experts."demo".skills."everything"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@modelcontextprotocol/server-everything@2026.8.31"
requiredEnv = ["SKILL_TOKEN"]
allowedDomains = ["api.example.com", "*.example.com"]
[experts."helper"]
description = "Helps"
instruction = "Help."
`;

async function expectOneLineError(toml: string, args: string[], pattern: RegExp) {
  const ws = workspace(toml);
  const result = await runCli(args, { cwd: ws, env: { ANTHROPIC_API_KEY: "k" } });
  expect(result.exitCode).not.toBe(0);
  const lines = result.stderr.trim().split("\n");
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(readdirSync(ws)).toEqual(["perstack.toml"]);
}

describe("bad perstack.toml inputs: one line, non-zero exit, no stack trace, nothing created", () => {
  const run = ["run", "demo", "q", "--runtime", "claude-code"];

  it("TOML syntax error names file, line and column", async () => {
    await expectOneLineError(`[experts."demo"\ninstruction = "x"\n`, run, /^perstack: \/.+\/perstack\.toml:1:\d+: TOML syntax error: /);
  });

  it("a missing required key whose misspelling is present names both", async () => {
    await expectOneLineError(`[experts."demo"]\ninstrution = "x"\n`, run, /experts\."demo"\.instruction: is required; did you mean to write "instruction" instead of "instrution"\?$/);
  });

  it("bad domain pattern names the entry", async () => {
    await expectOneLineError(
      `[experts."demo"]\ninstruction = "x"\n[experts."demo".skills."s"]\ntype = "mcpStdioSkill"\ncommand = "npx"\npackageName = "p"\nallowedDomains = ["*.*.example.com"]\n`,
      run,
      /experts\."demo"\.skills\."s"\.allowedDomains\[0\]: "\*\.\*\.example\.com" may only use a wildcard as a leading '\*\.' label/,
    );
  });

  it("missing delegate names the delegate", async () => {
    await expectOneLineError(`[experts."demo"]\ninstruction = "x"\ndelegates = ["ghost"]\n`, run, /experts\."demo"\.delegates\[0\]: "ghost" names no expert/);
  });

  it("unknown expert and unknown runtime list what exists", async () => {
    await expectOneLineError(GOOD, ["run", "demoo", "q", "--runtime", "claude-code"], /expert "demoo" not found in .* \(did you mean "demo"\?\); defined experts: demo, helper$/);
    await expectOneLineError(GOOD, ["run", "demo", "q", "--runtime", "claude"], /--runtime "claude" is not a runtime \(did you mean "claude-code"\?\); valid runtimes: perstack, local, docker, claude-code, gemini, codex, cursor$/);
  });

  it("the default runtime is the built-in engine, and docker is its alias", async () => {
    for (const args of [["run", "demo", "q", "--dry-run"], ["run", "demo", "q", "--runtime", "docker", "--dry-run"]]) {
      const result = await runCli(args, { cwd: workspace(GOOD), env: { ANTHROPIC_API_KEY: "k", SKILL_TOKEN: "t" } });
      expect(result.exitCode, result.stderr).toBe(0);
      const plan = JSON.parse(result.stdout);
      expect(plan.runtime).toMatchObject({ name: args.includes("docker") ? "docker" : "perstack", cliPackage: "perstack-sandbox" });
      expect(plan.agent.command[1]).toBe("/opt/perstack/engine/src/engine/main.js");
    }
  });

  it("--verbose adds the stack trace", async () => {
    const ws = workspace(`modle = 1\n`);
    const result = await runCli(["--verbose", "run", "demo", "q"], { cwd: ws });
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toMatch(/\n\s+at /);
  });
});

describe("--dry-run", () => {
  it("prints the plan as JSON with variable names and no values", async () => {
    const ws = workspace(GOOD);
    const result = await runCli(["run", "demo", "hello", "--runtime", "claude-code", "--dry-run"], {
      cwd: ws,
      env: { ANTHROPIC_API_KEY: "sk-secret-value-1", SKILL_TOKEN: "skill-secret-value-2" },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const plan = JSON.parse(result.stdout);
    expect(plan.proxy.allowlist).toEqual(["*.example.com"]);
    expect(plan.agent.env.filter((e: { source: string }) => e.source === "host").map((e: { name: string }) => e.name)).toEqual(["SKILL_TOKEN"]);
    // The provider key is the gateway's; the agent's variable holds the run's token.
    expect(plan.agent.env.find((e: { name: string }) => e.name === "ANTHROPIC_API_KEY")).toMatchObject({ source: "token" });
    expect(plan.gateway.credentials.map((k: { name: string }) => k.name)).toEqual(["ANTHROPIC_API_KEY"]);
    expect(result.stdout).not.toContain("secret-value");
    expect(readdirSync(ws)).toEqual(["perstack.toml"]);
  });
});

const docker = await requireDocker();

describe.skipIf(!docker)("export", () => {
  it("writes files docker-compose accepts, with secrets only as ${NAME}", async () => {
    const ws = workspace(GOOD);
    const out = join(ws, "exported");
    const result = await runCli(["export", "demo", "--runtime", "claude-code", "--out", out], {
      cwd: ws,
      env: { ANTHROPIC_API_KEY: "sk-secret-value-1", SKILL_TOKEN: "skill-secret-value-2" },
    });
    expect(result.exitCode, result.stderr).toBe(0);
    const files = readdirSync(out, { recursive: true }).map(String).sort();
    expect(files.filter((f) => !f.startsWith("gateway/") && !f.endsWith("extra-ca.crt"))).toEqual(
      ["agent", "agent/Dockerfile", "agent/agent-entrypoint.sh", "agent/link-skill-bin.mjs", "allowlist.txt", "compose.yaml", "gateway", "gateway.json", "proxy", "proxy/Dockerfile", "proxy/entrypoint.sh", "resolv.conf", "squid.conf"].sort(),
    );
    expect(files).toEqual(expect.arrayContaining(["gateway/Dockerfile", "gateway/gateway/package.json", "gateway/gateway/pricing/prices.json"]));
    for (const file of files) {
      if (statSync(join(out, file)).isDirectory()) continue;
      const text = readFileSync(join(out, file), "utf8");
      expect(text, file).not.toContain("secret-value");
    }
    const compose = readFileSync(join(out, "compose.yaml"), "utf8");
    // The real key only on the gateway service; the agent holds the token.
    expect(compose).toContain('ANTHROPIC_API_KEY: "${ANTHROPIC_API_KEY}"');
    expect(compose).toContain('ANTHROPIC_API_KEY: "${PERSTACK_GATEWAY_TOKEN}"');
    expect(compose).toContain('SKILL_TOKEN: "${SKILL_TOKEN}"');
    expect(readFileSync(join(out, "allowlist.txt"), "utf8")).toBe("*.example.com\n");

    const config = await execa("docker-compose", ["-f", join(out, "compose.yaml"), "config"], {
      cwd: out,
      reject: false,
      env: { PERSTACK_QUERY: "what is up", ANTHROPIC_API_KEY: "x", SKILL_TOKEN: "y", PERSTACK_GATEWAY_TOKEN: "t" },
    });
    expect(config.exitCode, config.stderr).toBe(0);
    expect(config.stdout).toContain("what is up");
    expect(config.stdout).toContain("com.docker.network.bridge.inhibit_ipv4");

    const again = await runCli(["export", "demo", "--runtime", "claude-code", "--out", out], { cwd: ws });
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toMatch(/--out .*: directory is not empty; choose an empty one or pass --force/);
  });
});
