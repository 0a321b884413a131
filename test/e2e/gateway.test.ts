// Issue 10: the provider gateway on every runtime that can use it. Each run's agent tries to find the provider key
// from inside the sandbox (its environment, every process's /proc/<pid>/environ, files) and sends what it saw back
// to the model: the fake's request log must hold the token the agent was given and never the real key. The
// gateway's meter must equal what the fake reported for every call, and a spent budget must stop a run.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { costOf, loadPriceTable } from "../../src/gateway/pricing.js";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { inspectRunSidecars, leftAfterTeardown, requireDocker } from "../support/docker.js";
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
  name: string;
  runtime: "perstack" | "claude-code" | "gemini" | "codex";
  fake: FakeKind;
  /** The variable the agent's runtime reads its key from: it must hold the run's token. */
  agentKey: string;
  model: string;
  shell: FakeStep;
  toml: (fake: FakeModel) => string;
  /** The host's environment for the run: the real credentials and where the model is. */
  env: (fake: FakeModel) => Record<string, string>;
}

const EXPERT = `[experts."probe"]\ndescription = "Probe"\ninstruction = "Do what you are asked."\n`;
const ENGINE_SHELL: FakeStep = { toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", DUMP] } }] };
const engineToml = (provider: string, setting = "") => `maxRetries = 0\n[provider]\nproviderName = "${provider}"\n${setting ? `[provider.setting]\n${setting}\n` : ""}${EXPERT}`;
const AWS_ACCESS_KEY_ID = "AKIAPERSTACKTEST0001";

/** A service-account key whose token_uri is the fake's token endpoint; REAL_KEY rides along so a leak is visible. */
const { privateKey: VERTEX_PRIVATE_KEY, publicKey: VERTEX_PUBLIC_KEY } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const VERTEX_CLIENT = "perstack-e2e@perstack-test.iam.gserviceaccount.com";
const keyDir = mkdtempSync(join(tmpdir(), "perstack-gateway-adc-"));
function vertexKeyFile(fake: FakeModel): string {
  const path = join(keyDir, `key-${fake.port}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      type: "service_account",
      project_id: "perstack-test",
      private_key_id: "e2e-1",
      private_key: VERTEX_PRIVATE_KEY.export({ type: "pkcs8", format: "pem" }),
      client_email: VERTEX_CLIENT,
      token_uri: `${fake.sandboxUrl}/token`,
      perstack_leak_marker: REAL_KEY,
    }),
    { mode: 0o600 },
  );
  return path;
}

const CASES: Case[] = [
  {
    name: "perstack (anthropic)",
    runtime: "perstack",
    fake: "anthropic",
    agentKey: "ANTHROPIC_API_KEY",
    model: "claude-sonnet-4-5",
    shell: ENGINE_SHELL,
    toml: () => engineToml("anthropic"),
    env: (fake) => ({ ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: fake.sandboxUrl }),
  },
  {
    name: "claude-code",
    runtime: "claude-code",
    fake: "anthropic",
    agentKey: "ANTHROPIC_API_KEY",
    model: "claude-sonnet-4-5",
    shell: { toolUse: [{ name: "Bash", input: { command: DUMP, description: "Look around" } }] },
    toml: () => `maxRetries = 0\n${EXPERT}`,
    env: (fake) => ({ ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: fake.sandboxUrl }),
  },
  {
    name: "gemini",
    runtime: "gemini",
    fake: "gemini",
    agentKey: "GEMINI_API_KEY",
    model: "gemini-2.5-pro",
    shell: { toolUse: [{ name: "run_shell_command", input: { command: DUMP, description: "Look around" } }] },
    toml: () => `maxRetries = 0\n${EXPERT}`,
    env: (fake) => ({ GEMINI_API_KEY: REAL_KEY, GOOGLE_GEMINI_BASE_URL: fake.sandboxUrl }),
  },
  {
    name: "codex",
    runtime: "codex",
    fake: "openai",
    agentKey: "OPENAI_API_KEY",
    model: "gpt-5",
    shell: { toolUse: [{ name: "exec_command", input: { cmd: DUMP } }] },
    toml: () => `maxRetries = 0\n${EXPERT}`,
    env: (fake) => ({ OPENAI_API_KEY: REAL_KEY, OPENAI_BASE_URL: fake.sandboxUrl }),
  },
  {
    name: "perstack (deepseek, Chat Completions)",
    runtime: "perstack",
    fake: "chat",
    agentKey: "DEEPSEEK_API_KEY",
    model: "deepseek-chat",
    shell: ENGINE_SHELL,
    toml: (fake) => engineToml("deepseek", `baseUrl = "${fake.sandboxUrl}"`),
    env: () => ({ DEEPSEEK_API_KEY: REAL_KEY }),
  },
  {
    name: "perstack (azure-openai)",
    runtime: "perstack",
    fake: "openai",
    agentKey: "AZURE_API_KEY",
    model: "gpt-5",
    shell: ENGINE_SHELL,
    toml: (fake) => engineToml("azure-openai", `baseUrl = "${fake.sandboxUrl}/openai/v1"`),
    env: () => ({ AZURE_API_KEY: REAL_KEY }),
  },
  {
    name: "perstack (ollama)",
    runtime: "perstack",
    fake: "ollama",
    agentKey: "OLLAMA_API_KEY",
    model: "llama3.2",
    shell: ENGINE_SHELL,
    toml: (fake) => engineToml("ollama", `baseUrl = "${fake.sandboxUrl}"`),
    env: () => ({ OLLAMA_API_KEY: REAL_KEY }),
  },
  {
    name: "perstack (amazon-bedrock, SigV4 in the gateway)",
    runtime: "perstack",
    fake: "bedrock",
    agentKey: "AWS_BEARER_TOKEN_BEDROCK",
    model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    shell: ENGINE_SHELL,
    toml: (fake) => engineToml("amazon-bedrock", `baseUrl = "${fake.sandboxUrl}"`),
    env: () => ({ AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: REAL_KEY, AWS_REGION: "us-east-1" }),
  },
  {
    name: "perstack (google-vertex, OAuth in the gateway)",
    runtime: "perstack",
    fake: "vertex",
    agentKey: "GOOGLE_VERTEX_API_KEY",
    model: "gemini-2.5-pro",
    shell: ENGINE_SHELL,
    toml: (fake) => engineToml("google-vertex", `baseUrl = "${fake.sandboxUrl}"\nlocation = "us-central1"`),
    env: (fake) => ({ GOOGLE_APPLICATION_CREDENTIALS: vertexKeyFile(fake), GOOGLE_CLOUD_PROJECT: "perstack-test" }),
  },
];

/** Where each protocol reports cached-input and cache-write tokens. */
const CACHE_FIELDS: Record<FakeKind, { read: string[]; write?: string[] }> = {
  anthropic: { read: ["cache_read_input_tokens"], write: ["cache_creation_input_tokens"] },
  openai: { read: ["input_tokens_details", "cached_tokens"] },
  gemini: { read: ["cachedContentTokenCount"] },
  vertex: { read: ["cachedContentTokenCount"] },
  chat: { read: ["prompt_tokens_details", "cached_tokens"] },
  ollama: { read: [] },
  bedrock: { read: ["cacheReadInputTokens"], write: ["cacheWriteInputTokens"] },
};

describe.skipIf(!docker)("the provider gateway: keys stay outside, one meter, budgets", () => {
  const fakes = new Map<FakeKind, FakeModel>();
  beforeAll(async () => {
    // One container serves every protocol; each handle drives its own.
    const first = await startFakeModel(docker!, "anthropic");
    for (const kind of ["anthropic", "gemini", "openai", "chat", "ollama", "bedrock", "vertex"] as const) fakes.set(kind, first.as(kind));
    await first.registerOAuthKey({ clientEmail: VERTEX_CLIENT, publicKeyPem: VERTEX_PUBLIC_KEY.export({ type: "spki", format: "pem" }).toString() });
  }, 900_000);
  afterAll(async () => {
    await fakes.get("anthropic")?.stop();
    rmSync(keyDir, { recursive: true, force: true });
  });

  it.each(CASES)("$name: the real key is readable nowhere in the sandbox, and metered usage equals the model's", async (c) => {
    const fake = fakes.get(c.fake)!;
    await fake.script([c.shell, { text: "Looked around." }]);
    const ws = makeWorkspace(c.toml(fake), "perstack-gateway-");
    const result = await runCli(["run", "probe", "Look around", "--runtime", c.runtime, "--model", c.model], { cwd: ws, env: c.env(fake), timeoutMs: 900_000 });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).not.toMatch(/credentials are passed into the sandbox/);

    const requests = await fake.requests();
    const seen = JSON.stringify(requests.map((r) => r.body));
    // The dump ran and went back to the model...
    expect(seen).toContain(MARK);
    // ...with the token where the key would be, and the key nowhere: not in the environment, not in a file.
    // (Gemini CLI scrubs variables named like keys from its shell's environment; the others show the token.)
    if (c.runtime !== "gemini") expect(seen).toMatch(new RegExp(`${c.agentKey}=[0-9a-f]{64}`));
    expect(seen).not.toContain(REAL_KEY);
    // (KEY_PIECE itself is in the command the model sent, so only a file listing would show a leak.)
    expect(seen).not.toContain("FOUND-2-FILE");
    // What reached the model server was the gateway's: re-signed for Bedrock with the real key id, a token Google's
    // endpoint issued for Vertex (the fake refuses anything else).
    if (c.fake === "bedrock") {
      const main = requests.filter((q) => q.kind === "main");
      expect(main.length).toBeGreaterThan(0);
      for (const r of main) expect(r.sigv4).toMatchObject({ accessKeyId: AWS_ACCESS_KEY_ID, region: "us-east-1", service: "bedrock" });
    }
    if (c.fake === "vertex") expect(requests.filter((q) => q.kind === "main").every((q) => q.auth === "issued-token")).toBe(true);

    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    const metered = (job!.job as unknown as { metered: { requests: number; usage: Record<string, number>; costUsd: number | null; pricing: { sha256: string } } }).metered;
    const reported = requests.filter((r) => r.usage);
    expect(metered.requests).toBeGreaterThanOrEqual(reported.length);
    expect(metered.usage.inputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.inputTokens, 0));
    expect(metered.usage.outputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.outputTokens, 0));
    // Cached and cache-write tokens, in each protocol's own fields.
    const vendorCount = (r: (typeof reported)[number], path: string[]) =>
      path.length === 0 ? 0 : Number(path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], r.usage!.vendor) ?? 0);
    const fields = CACHE_FIELDS[c.fake];
    expect(metered.usage.cachedInputTokens).toBe(reported.reduce((sum, r) => sum + vendorCount(r, fields.read), 0));
    expect(metered.usage.cacheWriteTokens).toBe(reported.reduce((sum, r) => sum + vendorCount(r, fields.write ?? []), 0));
    const table = loadPriceTable();
    const events = job!.events.filter((e) => e.type === "providerUsage" && e.usage) as unknown as Array<{ model?: string; usage: Parameters<typeof costOf>[1] }>;
    expect(events.length).toBe(reported.length);
    const costs = events.map((e) => costOf(e.model ?? c.model, e.usage, table));
    // A model the table does not price gives null and a warning, never a guess.
    if (costs.some((cost) => cost === undefined || cost === null)) {
      expect(metered.costUsd).toBeNull();
      expect(result.all).toMatch(/no price/i);
    } else {
      expect(metered.costUsd).toBeCloseTo(costs.reduce<number>((sum, cost) => sum + (cost ?? 0), 0), 10);
    }
    expect(metered.pricing.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Nothing of the key in what perstack wrote either.
    const jobDir = join(ws, "perstack", "jobs", job!.jobId);
    expect(readFileSync(join(jobDir, "job.json"), "utf8")).not.toContain(REAL_KEY);
    for (const run of job!.runs) expect(JSON.stringify(run.events) + run.raw).not.toContain(REAL_KEY);
  }, 900_000);

  it("perstack: the real key, the run's token and the proxy's policy are in no sidecar's container metadata", async () => {
    // Handed over on the sidecars' stdin (gateway/handover.ts): `docker inspect`, and anything that reads containers'
    // environments (monitoring agents, support bundles), sees neither the credentials nor the policy.
    const fake = fakes.get("anthropic")!;
    await fake.script([{ toolUse: [{ name: "exec", input: { command: "sleep", args: ["4"] } }] }, { text: "Done." }]);
    const ws = makeWorkspace(engineToml("anthropic"), "perstack-gateway-");
    const running = runCli(["run", "probe", "Wait", "--runtime", "perstack"], { cwd: ws, env: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: fake.sandboxUrl }, timeoutMs: 900_000 });
    const inspected = await inspectRunSidecars(docker!, join(ws, "perstack", "jobs"), 60_000);
    const result = await running;
    expect(result.exitCode, result.all).toBe(0);
    expect(Object.keys(inspected).sort()).toEqual(["agent", "gateway", "proxy"]);
    const token = /ANTHROPIC_API_KEY=([0-9a-f]{64})/.exec(inspected.agent!)?.[1];
    expect(token).toBeDefined();
    for (const [role, text] of Object.entries(inspected)) expect(text, role).not.toContain(REAL_KEY);
    for (const role of ["proxy", "gateway"]) {
      expect(inspected[role]).not.toContain(token!);
      expect(inspected[role]).not.toMatch(/http_access|PERSTACK_LOG_MARK|api\.anthropic|upstream/);
    }
  }, 900_000);

  it("perstack: an agent that streams Chat Completions itself without asking for their usage is metered all the same", async () => {
    // The agent finds the run's token (any process's environment) and the gateway's URL (the engine's input) and
    // makes its own streamed Chat Completions calls through the proxy, leaving stream_options.include_usage out: on
    // OpenAI's API such a stream reports no usage, so a gateway that only read it would meter nothing.
    const attack = [
      "const fs = require('fs');",
      "const input = JSON.parse(fs.readFileSync(process.env.HOME + '/.perstack/engine-input.json', 'utf8'));",
      "let token = '';",
      "for (const pid of fs.readdirSync('/proc')) { try { const m = fs.readFileSync('/proc/' + pid + '/environ', 'utf8').match(/OPENAI_API_KEY=([0-9a-f]{64})/); if (m) token = m[1]; } catch {} }",
      // OpenAI's own path: its streams report usage only when asked (DeepSeek's /chat/completions always does).
      "const base = input.provider.setting.baseUrl.replace(/\\/$/, '').replace(/\\/v1$/, '') + '/v1';",
      "(async () => { for (let i = 0; i < 2; i++) {",
      "  const res = await fetch(base + '/chat/completions', { method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },",
      "    body: JSON.stringify({ model: 'gpt-5', stream: true, messages: [{ role: 'user', content: 'unmetered ' + i }] }) });",
      "  const text = await res.text();",
      "  console.log('attack ' + i + ' ' + res.status + ' usage:' + text.includes('\"usage\":{'));",
      "} })();",
    ].join("\n");
    const fake = fakes.get("openai")!;
    const chat = fakes.get("chat")!;
    await fake.script([{ toolUse: [{ name: "exec", input: { command: "node", args: ["-e", attack] } }] }, { text: "Done." }]);
    await chat.script([]);
    const ws = makeWorkspace(engineToml("openai"), "perstack-gateway-");
    const result = await runCli(["run", "probe", "Spend", "--runtime", "perstack", "--model", "gpt-5"], {
      cwd: ws,
      env: { OPENAI_API_KEY: REAL_KEY, OPENAI_BASE_URL: fake.sandboxUrl },
      timeoutMs: 900_000,
    });
    expect(result.exitCode, result.all).toBe(0);
    const engineCalls = (await fake.requests()).filter((r) => r.kind === "main");
    const toolOutput = JSON.stringify(engineCalls.at(-1)?.body);
    // Both calls went through, and each stream carried its usage: the gateway asked for it on the agent's behalf.
    expect(toolOutput).toContain("attack 0 200 usage:true");
    expect(toolOutput).toContain("attack 1 200 usage:true");
    const attacks = await chat.requests();
    expect(attacks).toHaveLength(2);
    for (const r of attacks) expect((r.body as { stream_options?: unknown }).stream_options).toEqual({ include_usage: true });
    // The job's meter counts them: the engine's calls and the agent's own, each as the fake reported it.
    const [job] = readJobs(ws);
    const metered = (job!.job as unknown as { metered: { requests: number; usage: { inputTokens: number; outputTokens: number } } }).metered;
    const reported = [...engineCalls, ...attacks].filter((r) => r.usage);
    expect(reported).toHaveLength(engineCalls.length + 2);
    expect(metered.usage.inputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.inputTokens, 0));
    expect(metered.usage.outputTokens).toBe(reported.reduce((sum, r) => sum + r.usage!.outputTokens, 0));
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
    expect(await leftAfterTeardown(docker!, job!.jobId)).toEqual([]);
  }, 900_000);
});
