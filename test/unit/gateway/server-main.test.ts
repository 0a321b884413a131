// The gateway as a program (the compiled main.js, as the sidecar runs it; `npm test` builds first): the ready line,
// records on stdout, a clean exit on SIGTERM, a readable refusal to start, and no secret in any of its output.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import type { ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FakeUpstream } from "./gateway-harness.ts";
import { REAL_KEY, TOKEN, eventually, startUpstream } from "./gateway-harness.ts";

const MAIN = fileURLToPath(new URL("../../../dist/src/gateway/main.js", import.meta.url));

/** An environment with nothing inherited but PATH, so the only secrets present are the ones under test. */
function gatewayEnv(configFile: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env.PATH ?? "", PERSTACK_GATEWAY_CONFIG: configFile, PERSTACK_GATEWAY_TOKEN: TOKEN, ANTHROPIC_API_KEY: REAL_KEY, ...extra };
}

function lines(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("the gateway program", () => {
  let dir: string;
  let upstream: FakeUpstream;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "gateway-main-"));
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const writeConfig = (name: string, config: Record<string, unknown>): string => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(config));
    return file;
  };

  it("prints gatewayReady, forwards, prints usage, and exits 0 on SIGTERM without leaking a secret", async () => {
    const configFile = writeConfig("ok.json", { protocol: "anthropic", upstream: upstream.url, allowInsecureUpstream: true, listen: { host: "127.0.0.1", port: 0 } });
    const child: ResultPromise = execa("node", [MAIN], { env: gatewayEnv(configFile), extendEnv: false, reject: false, buffer: true });
    let stdout = "";
    child.stdout!.on("data", (part: Buffer) => (stdout += part.toString("utf8")));
    await eventually(() => stdout.includes("\n"), 10_000);
    const ready = lines(stdout)[0]!;
    expect(ready).toEqual({ type: "gatewayReady", port: expect.any(Number) });
    const base = `http://127.0.0.1:${String(ready.port)}`;

    expect((await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-api-key": TOKEN }, body: '{"model":"claude-x"}' })).status).toBe(200);
    expect((await fetch(`${base}/v1/messages`, { method: "POST", headers: { "x-api-key": "wrong" }, body: "{}" })).status).toBe(401);
    expect(upstream.received.at(-1)!.headers["x-api-key"]).toBe(REAL_KEY);
    await eventually(() => lines(stdout).length >= 3);

    child.kill("SIGTERM");
    const result = await child;
    expect(result.exitCode).toBe(0);
    const records = lines(String(result.stdout));
    expect(records.map((r) => r.type)).toEqual(["gatewayReady", "providerUsage", "gatewayRefused"]);
    expect(records[1]).toMatchObject({ type: "providerUsage", status: 200, model: "claude-x", path: "/v1/messages" });
    const everything = `${String(result.stdout)}${String(result.stderr)}`;
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(REAL_KEY);
  });

  it.each([
    ["no config variable", (file: string) => ({ ...gatewayEnv(file), PERSTACK_GATEWAY_CONFIG: "" }), /PERSTACK_GATEWAY_CONFIG is not set/],
    ["a short token", (file: string) => gatewayEnv(file, { PERSTACK_GATEWAY_TOKEN: "short-secret-token" }), /PERSTACK_GATEWAY_TOKEN is too short/],
    ["no provider key", (file: string) => ({ ...gatewayEnv(file), ANTHROPIC_API_KEY: "" }), /anthropic needs ANTHROPIC_API_KEY/],
  ])("refuses to start with %s, saying why on stderr", async (_name, env, message) => {
    const configFile = writeConfig("refuse.json", { protocol: "anthropic", upstream: "https://api.anthropic.com", listen: { host: "127.0.0.1", port: 0 } });
    const result = await execa("node", [MAIN], { env: env(configFile), extendEnv: false, reject: false, timeout: 10_000 });
    expect(result.exitCode).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(message);
    expect(result.stderr).not.toContain("short-secret-token");
    expect(result.stderr).not.toContain(REAL_KEY);
  });

  it("names the bad key of a config file", async () => {
    const configFile = writeConfig("bad.json", { protocol: "anthropic", upstream: "http://api.anthropic.com", listen: { host: "127.0.0.1", port: 0 } });
    const result = await execa("node", [MAIN], { env: gatewayEnv(configFile), extendEnv: false, reject: false, timeout: 10_000 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr).toMatch(/upstream .*allowInsecureUpstream/);
  });
});
