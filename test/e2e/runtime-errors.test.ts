// Each runtime's error path: an API error (or, for the cursor stand-in, an auth failure) ends the job
// stoppedByError with the vendor's message kept, a non-zero exit and the events on disk; a missing key fails
// before anything is built.
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";
import { cursorStandinBase, startFakeModel, type FakeKind, type FakeModel } from "../support/fake-model-container.js";

const docker = await requireDocker();

const TOML = `maxRetries = 0
[experts."plain"]
instruction = "Answer briefly."
`;

const CASES = [
  { runtime: "gemini", fake: "gemini", baseUrlEnv: "GOOGLE_GEMINI_BASE_URL", keyEnv: "GEMINI_API_KEY", status: 401, message: "API key not valid (scripted for perstack)" },
  // codex replaces a 500's body with its own "high demand" text, so the server's words survive only on a 4xx.
  { runtime: "codex", fake: "openai", baseUrlEnv: "OPENAI_BASE_URL", keyEnv: "OPENAI_API_KEY", status: 401, message: "Incorrect API key provided (scripted for perstack)" },
] as const;

describe.skipIf(!docker)("runtime error paths", () => {
  const engine = docker!;
  const fakes = new Map<FakeKind, FakeModel>();
  const workspaces: string[] = [];
  const workspace = () => {
    const dir = makeWorkspace(TOML, "perstack-errors-");
    workspaces.push(dir);
    return dir;
  };

  beforeAll(async () => {
    for (const c of CASES) fakes.set(c.fake, await startFakeModel(engine, c.fake));
  });
  afterAll(async () => {
    await Promise.all([...fakes.values()].map((f) => f.stop()));
    for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.runtime}: a ${c.status} ends stoppedByError with the vendor's message, non-zero exit, events on disk`, async () => {
      const fake = fakes.get(c.fake)!;
      await fake.script([{ error: { status: c.status, type: c.status === 401 ? "authentication_error" : "server_error", message: c.message } }]);
      const ws = workspace();
      const result = await runCli(["run", "plain", "hello", "--runtime", c.runtime], { cwd: ws, env: { [c.baseUrlEnv]: fake.sandboxUrl, [c.keyEnv]: "fake-key" } });
      expect(result.exitCode, result.all).toBe(1);
      expect(result.stderr).toContain(c.message);
      const [job] = readJobs(ws);
      expect(job!.job.status).toBe("stoppedByError");
      const stop = job!.events.find((e) => e.type === "stopRunByError")!;
      expect(JSON.stringify(stop.error)).toContain(c.message);
      expect(job!.checkpoints.some((cp) => cp.status === "stoppedByError")).toBe(true);
    });

    it(`${c.runtime}: a missing key fails before any build, naming the variable`, async () => {
      const ws = workspace();
      const result = await runCli(["run", "plain", "hello", "--runtime", c.runtime], { cwd: ws, env: { [c.baseUrlEnv]: fakes.get(c.fake)!.sandboxUrl } });
      expect(result.exitCode).toBe(2);
      expect(result.stderr).toContain(c.runtime === "gemini" ? "GOOGLE_GENERATIVE_AI_API_KEY or GEMINI_API_KEY is not set" : `${c.keyEnv} is not set`);
      expect(existsSync(join(ws, "perstack"))).toBe(false);
    });
  }

  it("cursor: an auth failure without a result line ends stoppedByError with the CLI's message", async () => {
    const base = await cursorStandinBase(engine);
    const ws = workspace();
    const result = await runCli(["run", "plain", "hello [fail-auth]", "--runtime", "cursor"], { cwd: ws, env: { CURSOR_API_KEY: "fake-key", PERSTACK_BASE_IMAGE_NODE: base } });
    expect(result.exitCode, result.all).toBe(1);
    expect(result.stderr).toContain("Authentication failed (401 Unauthorized)");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
  });

  it("stops an agent that outlives --max-duration", async () => {
    // A CLI can outlive any sensible bound (codex, for one, retries forever when its proxy is unreachable);
    // here a shell command outlasts the limit.
    const fake = fakes.get("gemini")!;
    await fake.script([{ toolUse: [{ name: "run_shell_command", input: { command: "sleep 120", description: "wait" } }] }, { text: "never" }]);
    const ws = workspace();
    const started = Date.now();
    const result = await runCli(["run", "plain", "hello", "--runtime", "gemini", "--max-duration", "15s"], { cwd: ws, env: { GOOGLE_GEMINI_BASE_URL: fake.sandboxUrl, GEMINI_API_KEY: "k" } });
    expect(result.exitCode, result.all).toBe(1);
    expect(Date.now() - started).toBeLessThan(100_000);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    expect(job!.events.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "DeadlineExceeded", message: "the agent ran longer than --max-duration (15 s) and was stopped" } });
  });

  it("claude-code: a missing ANTHROPIC_API_KEY fails before any build", async () => {
    const ws = workspace();
    const result = await runCli(["run", "plain", "hello", "--runtime", "claude-code"], { cwd: ws, env: {} });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("ANTHROPIC_API_KEY is not set (needed as provider anthropic key, held by the provider gateway)");
    expect(existsSync(join(ws, "perstack"))).toBe(false);
  });

  it("a model of another vendor is refused before any build, naming both", async () => {
    const ws = workspace();
    const result = await runCli(["run", "plain", "hello", "--runtime", "gemini", "--model", "claude-sonnet-4-5"], { cwd: ws, env: { GEMINI_API_KEY: "k" } });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe('perstack: --model "claude-sonnet-4-5" is an Anthropic model, but runtime gemini runs Google models (e.g. gemini-2.5-pro); choose another model or runtime');
  });

  it("cursor: a missing CURSOR_API_KEY fails before any build", async () => {
    const ws = workspace();
    const result = await runCli(["run", "plain", "hello", "--runtime", "cursor"], { cwd: ws, env: {} });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toContain("CURSOR_API_KEY is not set");
  });
});
