// `perstack run --runtime claude-code` end to end: the real Claude Code CLI in its sandbox image, the real squid
// proxy, and the fake Anthropic server as a project container reached through the proxy as the configured upstream.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { join } from "node:path";
import type Docker from "dockerode";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeWorkspace, readJobs, runCli } from "../support/cli.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { startFakeAnthropic, toolResultsSent, type FakeAnthropic } from "../support/fake-model-container.js";

const docker = await requireDocker();

const SKILL = `
[experts."demo".skills."everything"]
type = "mcpStdioSkill"
command = "npx"
packageName = "@modelcontextprotocol/server-everything@2026.8.31"
`;

function config(baseUrl: string, extra = ""): string {
  return `maxRetries = 0
[provider]
providerName = "anthropic"
[provider.setting]
baseUrl = "${baseUrl}"
[experts."demo"]
description = "A demo expert"
instruction = "You are a careful demo expert."
${SKILL}${extra}`;
}

const KEY = { ANTHROPIC_API_KEY: "sk-fake-e2e" };

/** Node inside the agent container: connects to the internal network's gateway, asks 127.0.0.11, tries IPv6. */
const GATEWAY_AND_RESOLVER_PROBE = `node -e '
const net = require("net"), os = require("os"), dns = require("dns/promises"), fs = require("fs");
const a = Object.entries(os.networkInterfaces()).flatMap(([n, l]) => n === "lo" ? [] : l).find((x) => x.family === "IPv4");
const gw = a.address.split(".").map(Number).map((o, i) => o & a.netmask.split(".").map(Number)[i]); gw[3] += 1;
const attempt = (host, port) => new Promise((ok) => { const s = net.connect({ host, port }); const t = setTimeout(() => { s.destroy(); ok("ETIMEDOUT"); }, 4000); s.on("connect", () => { clearTimeout(t); s.destroy(); ok("CONNECTED"); }); s.on("error", (e) => { clearTimeout(t); ok(e.code); }); });
(async () => {
  console.log("gateway", gw.join("."), await attempt(gw.join("."), PORT));
  const r = new dns.Resolver({ timeout: 1500, tries: 1 }); r.setServers(["127.0.0.11"]);
  console.log("embedded-dns", await r.resolve4("example.com").then((x) => "RESOLVED " + x, (e) => e.code));
  console.log("ipv6 disabled=" + fs.readFileSync("/proc/sys/net/ipv6/conf/all/disable_ipv6", "utf8").trim(), await attempt("2001:db8::1", 80));
})();'`;

async function leftovers(engine: Docker, jobId: string): Promise<string[]> {
  const filters = { label: [`perstack.job=${jobId}`] };
  const containers = await engine.listContainers({ all: true, filters });
  const networks = await engine.listNetworks({ filters });
  return [...containers.map((c) => c.Names[0] ?? c.Id), ...networks.map((n) => n.Name)];
}

describe.skipIf(!docker)("claude-code runtime in the sandbox", () => {
  const engine = docker!;
  let fake: FakeAnthropic;
  let other: FakeAnthropic;
  const workspaces: string[] = [];
  const workspace = (toml: string) => {
    const dir = makeWorkspace(toml);
    workspaces.push(dir);
    return dir;
  };

  beforeAll(async () => {
    [fake, other] = await Promise.all([startFakeAnthropic(engine), startFakeAnthropic(engine)]);
  });

  afterAll(async () => {
    await Promise.all([fake?.stop(), other?.stop()]);
    for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
  });

  it("runs the real CLI: a Write call and an MCP skill call, the file on the host, everything on disk", async () => {
    await fake.script([
      { text: "I will write the file.", toolUse: [{ name: "Write", input: { file_path: "/workspace/hello.txt", content: "hello from claude\n" } }] },
      { toolUse: [{ name: "mcp__everything__echo", input: { message: "ping from the fake model" } }] },
      { text: "All done: hello.txt is written." },
    ]);
    const ws = workspace(config(fake.sandboxUrl));
    const result = await runCli(["run", "demo", "write hello.txt", "--runtime", "claude-code"], { cwd: ws, env: KEY });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stdout).toContain("All done: hello.txt is written.");

    expect(readFileSync(join(ws, "hello.txt"), "utf8")).toBe("hello from claude\n");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("completed");
    expect(job!.job.usage.totalTokens).toBeGreaterThan(0);
    expect(job!.job.usage.inputTokens).toBeGreaterThan(0);

    const types = job!.events.map((e) => e.type).filter((t) => !t.startsWith("docker") && t !== "proxyAccess" && t !== "providerUsage");
    expect(types).toEqual([
      "initializeRuntime", "startRun",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "callTools", "resolveToolResults", "finishAllToolCalls", "continueToNextStep",
      "startGeneration", "completeRun",
    ]);
    const calls = job!.events.flatMap((e) => (e.type === "callTools" ? (e.toolCalls as Array<{ skillName: string; toolName: string }>) : []));
    expect(calls.map((c) => `${c.skillName}/${c.toolName}`)).toEqual(["claude-code/Write", "everything/echo"]);
    const echoed = toolResultsSent(await fake.requests());
    expect(echoed.some((text) => text.includes("Echo: ping from the fake model"))).toBe(true);

    const final = job!.checkpoints.find((c) => c.status === "completed")!;
    expect(JSON.stringify(final.messages.at(-1))).toContain("All done: hello.txt is written.");
    expect(job!.checkpoints.filter((c) => c.status === "proceeding")).toHaveLength(2);
    expect(job!.raw.split("\n").filter(Boolean).length).toBeGreaterThan(5);
    expect(job!.events.some((e) => e.type === "proxyAccess" && e.action === "allowed" && e.reason === "configured-upstream")).toBe(true);
    const setting = JSON.parse(readFileSync(join(ws, "perstack", "jobs", job!.jobId, "runs", job!.runIds[0]!, "run-setting.json"), "utf8"));
    expect(setting.runtime).toMatchObject({ name: "claude-code", cliPackage: "@anthropic-ai/claude-code", cliVersion: "2.1.330" });
    expect(JSON.stringify(setting)).not.toContain("sk-fake-e2e");
    expect(await leftAfterTeardown(engine, job!.jobId)).toEqual([]);

    // A second run with identical inputs builds no image.
    await fake.script([{ text: "Second run." }]);
    const second = await runCli(["run", "demo", "another question", "--runtime", "claude-code", "--json"], { cwd: ws, env: KEY });
    expect(second.exitCode, second.all).toBe(0);
    const events = second.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; message?: string });
    expect(events.filter((e) => e.type === "dockerBuildProgress")).toEqual([]);
    // (The gateway's providerUsage lines may trail the run's last event: they are written when a response ends.)
    expect(events.filter((e) => e.type !== "providerUsage").at(-1)).toMatchObject({ type: "completeRun", text: "Second run." });
  });

  it("ends stoppedByError on a fake-server 500, exits non-zero, and keeps the events", async () => {
    await fake.script([{ error: { status: 500, type: "api_error", message: "scripted upstream failure" } }]);
    const ws = workspace(config(fake.sandboxUrl));
    const result = await runCli(["run", "demo", "fail please", "--runtime", "claude-code"], { cwd: ws, env: KEY });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain("scripted upstream failure");
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    const stop = job!.events.find((e) => e.type === "stopRunByError")!;
    expect(stop.error).toMatchObject({ statusCode: 500 });
    expect(job!.checkpoints.some((c) => c.status === "stoppedByError")).toBe(true);
    expect(job!.raw).toContain("scripted upstream failure");
    expect(await leftAfterTeardown(engine, job!.jobId)).toEqual([]);
  });

  it("confines the agent: the provider gateway only, 403 and events for the rest, no route or DNS without the proxy, env by name", async () => {
    // host-gateway (what host.docker.internal resolves to in the proxy) is docker0's address.
    const hostGateway = networkInterfaces().docker0?.find((a) => a.family === "IPv4")?.address;
    expect(hostGateway, "docker0 has no IPv4 address").toBeDefined();
    const bash = (command: string) => ({ toolUse: [{ name: "Bash", input: { command, description: "probe" } }] });
    const noProxy = "env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy";
    await fake.script([
      // The model server is the gateway's upstream, not the agent's: only the gateway, with the run's token, and
      // only into the provider's API.
      bash(`curl -s -o /dev/null -w 'upstream=%{http_code}' http://host.docker.internal:${fake.port}/health`),
      bash(`curl -s -o /dev/null -w 'gateway-no-token=%{http_code}' -X POST http://perstack-gateway:8080/v1/messages; echo; curl -s -o /dev/null -w 'gateway-wrong-token=%{http_code}' -H 'x-api-key: not-the-token' -X POST http://perstack-gateway:8080/v1/messages; echo; curl -s -o /dev/null -w 'gateway-outside-api=%{http_code}' -H "x-api-key: $ANTHROPIC_API_KEY" http://perstack-gateway:8080/v1/files; echo; curl -s -o /dev/null -w 'gateway-direct=%{http_code}' -H "x-api-key: $ANTHROPIC_API_KEY" --proxy '' http://perstack-gateway:8080/v1/messages; echo`),
      bash(`curl -s -o /dev/null -w 'other=%{http_code}' http://host.docker.internal:${other.port}/health`),
      bash(`curl -s -o /dev/null -w 'name=%{http_code}' http://blocked.example.com/`),
      bash(`curl -s -o /dev/null -w 'ip=%{http_code}' http://${hostGateway}:${fake.port}/health`),
      bash(`${noProxy} curl -s -m 4 -o /dev/null http://host.docker.internal:${fake.port}/health; echo "direct-name-rc=$?"; ${noProxy} curl -s -m 4 -o /dev/null http://${hostGateway}:${fake.port}/health; echo "direct-ip-rc=$?"`),
      bash(`s=$(date +%s%N); getent hosts example.com; echo "dns-rc=$? dns-ms=$(( ($(date +%s%N) - s) / 1000000 ))"`),
      bash(`echo "named=\${PERSTACK_E2E_NAMED:-absent} unnamed=\${PERSTACK_E2E_UNNAMED:-absent} uid=$(id -u)"; touch /workspace/perstack/probe 2>/dev/null; echo "perstack-write-rc=$?"; touch /etc/probe 2>/dev/null; echo "rootfs-write-rc=$?"; ls /var/run/docker.sock 2>/dev/null; echo "socket-rc=$?"`),
      // The internal network's own gateway (the first address of the agent's subnet, which inhibit_ipv4 leaves
      // unassigned), Docker's embedded resolver asked directly, IPv6, and a CONNECT with nothing allowlisted.
      bash(GATEWAY_AND_RESOLVER_PROBE.replace("PORT", String(fake.port))),
      bash(`curl -s -o /dev/null -w 'invalid=%{http_connect}' https://anything.invalid/; echo; curl -s -o /dev/null -w 'allowlist-empty=%{http_connect}' https://api.anthropic.com/`),
      { text: "Probes finished." },
    ]);
    const ws = workspace(config(fake.sandboxUrl));
    const result = await runCli(["run", "demo", "probe the sandbox", "--runtime", "claude-code", "--env", "PERSTACK_E2E_NAMED"], {
      cwd: ws,
      env: { ...KEY, PERSTACK_E2E_NAMED: "named-value", PERSTACK_E2E_UNNAMED: "unnamed-value" },
    });
    expect(result.exitCode, result.all).toBe(0);
    const out = toolResultsSent(await fake.requests()).join("\n");
    expect(out).toContain("upstream=403");
    expect(out).toContain("gateway-no-token=401");
    expect(out).toContain("gateway-wrong-token=401");
    expect(out).toContain("gateway-outside-api=403");
    // Without the proxy the gateway's name does not even resolve: it sits on the egress network only.
    expect(out).toMatch(/gateway-direct=000/);
    expect(out).toContain("other=403");
    expect(out).toContain("name=403");
    expect(out).toContain("ip=403");
    expect(out).toMatch(/direct-name-rc=(6|7|28)\b/);
    expect(out).toMatch(/direct-ip-rc=(7|28)\b/);
    const dns = /dns-rc=(\d+) dns-ms=(\d+)/.exec(out);
    expect(dns?.[1]).not.toBe("0");
    expect(Number(dns?.[2])).toBeLessThan(1000);
    expect(out).toContain("named=named-value unnamed=absent uid=1000");
    expect(out).toMatch(/perstack-write-rc=[1-9]/);
    expect(out).toMatch(/rootfs-write-rc=[1-9]/);
    expect(out).toMatch(/socket-rc=[1-9]/);
    const gateway = /gateway (\S+) (\S+)/.exec(out);
    expect(gateway?.[2], out).toMatch(/^(EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNREFUSED)$/);
    expect(out).toMatch(/embedded-dns (ETIMEOUT|ESERVFAIL|EREFUSED|ECONNREFUSED|ENOTFOUND)/);
    expect(out).toMatch(/ipv6 disabled=1 (EADDRNOTAVAIL|ENETUNREACH)/);
    expect(out).toContain("invalid=403");
    expect(out).toContain("allowlist-empty=403");
    expect(existsSync(join(ws, "perstack", "probe"))).toBe(false);

    const [job] = readJobs(ws);
    const blocked = job!.events.filter((e) => e.type === "proxyAccess" && e.action === "blocked");
    expect(blocked).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ domain: "host.docker.internal", port: other.port, reason: "not-allowlisted" }),
        expect.objectContaining({ domain: "host.docker.internal", port: fake.port, reason: "not-allowlisted" }),
        expect.objectContaining({ domain: "blocked.example.com", port: 80, reason: "not-allowlisted" }),
        expect.objectContaining({ domain: hostGateway, reason: "ip-literal" }),
      ]),
    );
  });

  it("fails a missing requiredEnv before any image or container exists", async () => {
    const ws = workspace(
      config(fake.sandboxUrl, `requiredEnv = ["PERSTACK_E2E_MISSING"]\n`).replace(
        "@modelcontextprotocol/server-everything@2026.8.31",
        "@modelcontextprotocol/server-everything@2026.8.30",
      ),
    );
    const imagesBefore = (await engine.listImages()).length;
    // No container is created (an earlier run's teardown may still be removing its own: only new ones count).
    const containersBefore = new Set((await engine.listContainers({ all: true })).map((c) => c.Id));
    const result = await runCli(["run", "demo", "anything", "--runtime", "claude-code"], { cwd: ws, env: KEY });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe(
      `perstack: PERSTACK_E2E_MISSING is not set (needed as experts."demo".skills."everything".requiredEnv); export it or put it in .env, .env.local next to ${join(ws, "perstack.toml")}`,
    );
    expect((await engine.listImages()).length).toBe(imagesBefore);
    expect((await engine.listContainers({ all: true })).filter((c) => !containersBefore.has(c.Id))).toEqual([]);
    expect(existsSync(join(ws, "perstack"))).toBe(false);
  });

  it("removes its containers and networks on SIGINT and records the interruption", async () => {
    // Claude Code refuses a standalone `sleep N` at once, and the recorder announces a call with its result: a
    // command that really runs for a minute, and the interrupt once the generation that asks for it has begun.
    await fake.script([{ toolUse: [{ name: "Bash", input: { command: "node -e 'setTimeout(() => {}, 60000)'", description: "wait", timeout: 120000 } }] }, { text: "never" }]);
    const ws = workspace(config(fake.sandboxUrl));
    const child = runCli(["run", "demo", "wait a minute", "--runtime", "claude-code", "--json"], { cwd: ws, env: KEY });
    let sawCall = false;
    child.stdout!.on("data", (chunk: Buffer) => {
      if (!sawCall && chunk.toString().includes('"startGeneration"')) {
        sawCall = true;
        setTimeout(() => child.kill("SIGINT"), 2_000);
      }
    });
    const result = await child;
    expect(sawCall).toBe(true);
    expect(result.exitCode).toBe(130);
    const [job] = readJobs(ws);
    expect(job!.job.status).toBe("stoppedByError");
    expect(job!.events.at(-1)).toMatchObject({ type: "stopRunByError", error: { name: "Interrupted" } });
    expect(await leftovers(engine, job!.jobId)).toEqual([]);
  });

  it("removes labelled leftovers of a crashed earlier run", async () => {
    const labels = { "perstack.managed": "true", "perstack.job": "crashed-job", "perstack.owner-pid": "999999", "perstack.owner-host": hostname() };
    const network = await engine.createNetwork({ Name: "perstack-crashed-test-internal", Internal: true, Labels: labels });
    const base = (await engine.listImages({ filters: { reference: ["perstack-local/debian:bookworm-slim"] } }))[0]?.RepoTags?.[0] ?? "debian:bookworm-slim";
    const container = await engine.createContainer({ name: "perstack-crashed-test-agent", Image: base, Cmd: ["true"], Labels: labels });
    await fake.script([{ text: "Fine." }]);
    const ws = workspace(config(fake.sandboxUrl));
    const result = await runCli(["run", "demo", "hi", "--runtime", "claude-code"], { cwd: ws, env: KEY });
    expect(result.exitCode, result.all).toBe(0);
    expect(result.stderr).toContain("removed leftovers of crashed runs: perstack-crashed-test-agent, perstack-crashed-test-internal");
    await expect(container.inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(network.inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it("exported files run by hand with docker-compose and reach the same result", async () => {
    await fake.script([
      { toolUse: [{ name: "Write", input: { file_path: "/workspace/by-hand.txt", content: "compose ran me\n" } }] },
      { text: "Exported sandbox works." },
    ]);
    const ws = workspace(config(fake.sandboxUrl));
    const out = join(ws, "perstack-export");
    const exported = await runCli(["export", "demo", "--runtime", "claude-code", "--out", out], { cwd: ws });
    expect(exported.exitCode, exported.all).toBe(0);
    const project = `perstackexport${Date.now()}`;
    const compose = (args: string[]) =>
      execa("docker-compose", ["-p", project, ...args], {
        cwd: out,
        reject: false,
        all: true,
        timeout: 300_000,
        env: { ANTHROPIC_API_KEY: "sk-fake-e2e", PERSTACK_GATEWAY_TOKEN: "by-hand-token-0123456789abcdef", PERSTACK_QUERY: "write by-hand.txt" },
      });
    try {
      const up = await compose(["up", "--build", "--abort-on-container-exit", "--exit-code-from", "agent"]);
      expect(up.exitCode, up.all).toBe(0);
      expect(up.all).toContain("Exported sandbox works.");
      expect(readFileSync(join(ws, "by-hand.txt"), "utf8")).toBe("compose ran me\n");
    } finally {
      await compose(["down", "-v", "--remove-orphans"]);
    }
  });

  it("uses the instruction and the model from the config and flags", async () => {
    await fake.script([{ text: "ok" }]);
    const ws = workspace(config(fake.sandboxUrl));
    writeFileSync(join(ws, ".env"), "ANTHROPIC_API_KEY=sk-from-dotenv\n");
    const result = await runCli(["run", "demo", "which model?", "--runtime", "claude-code", "--model", "claude-haiku-4-5"], { cwd: ws, env: {} });
    expect(result.exitCode, result.all).toBe(0);
    const main = (await fake.requests()).filter((r) => r.kind === "main");
    const body = main[0]!.body as { model: string; system: Array<{ text: string }> };
    expect(body.model).toBe("claude-haiku-4-5");
    expect(JSON.stringify(body.system)).toContain("You are a careful demo expert.");
  });
});
