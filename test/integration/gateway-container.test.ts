// The provider gateway as it will run beside a sandbox: its image built from the node base image with only its own
// modules and packages, started as a container that holds the real key, in front of the fake model server. A wrong
// token never reaches the model; the right one does, and every call is metered on the container's stdout.
// (Issue 10: the gateway is not wired into runs yet; this proves the containerized program.)
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type Docker from "dockerode";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayImage } from "../../src/plan/gateway-image.js";
import { gatewayContextFiles } from "../../src/runtimes/engine-files.js";
import { resolveBaseImages, overridesFromEnv } from "../../src/sandbox/base-images.js";
import { ensureImage } from "../../src/sandbox/image-builder.js";
import { requireDocker } from "../support/docker.js";
import { startFakeModel, type FakeModel } from "../support/fake-model-container.js";

const docker = await requireDocker();

const REAL_KEY = `sk-ant-real-${randomBytes(8).toString("hex")}`;
const TOKEN = randomBytes(24).toString("hex");

/** The container's stdout so far, as lines (the Engine multiplexes stdout and stderr on one stream). */
async function stdoutLines(container: Docker.Container): Promise<string[]> {
  const raw = (await container.logs({ stdout: true, stderr: false, follow: false })) as unknown as Buffer;
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (c: Buffer) => chunks.push(c));
  container.modem.demuxStream(new PassThrough().end(raw) as unknown as NodeJS.ReadableStream, out, new PassThrough());
  await new Promise((r) => setImmediate(r));
  return Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean);
}

describe.skipIf(!docker)("the provider gateway in a container", () => {
  const engine = docker as Docker;
  let fake: FakeModel;
  let container: Docker.Container;
  let url: string;

  beforeAll(async () => {
    fake = await startFakeModel(engine, "anthropic");
    const base = await resolveBaseImages(engine, overridesFromEnv());
    const image = gatewayImage(base.node, "", gatewayContextFiles());
    await ensureImage(engine, image, () => {});
    // Like squid.conf, the (non-secret) config is a read-only bind of a file the host wrote.
    const dir = mkdtempSync(join(tmpdir(), "perstack-gateway-"));
    writeFileSync(join(dir, "gateway.json"), JSON.stringify({ protocol: "anthropic", upstream: fake.sandboxUrl, allowInsecureUpstream: true, listen: { host: "0.0.0.0", port: 8080 }, model: "claude-sonnet-4-5" }));
    chmodSync(dir, 0o755);
    chmodSync(join(dir, "gateway.json"), 0o644);
    container = await engine.createContainer({
      Image: image.ref,
      Env: [`PERSTACK_GATEWAY_CONFIG=/etc/perstack/gateway/gateway.json`, `PERSTACK_GATEWAY_TOKEN=${TOKEN}`, `ANTHROPIC_API_KEY=${REAL_KEY}`],
      ExposedPorts: { "8080/tcp": {} },
      Labels: { "perstack.test": "gateway" },
      HostConfig: {
        PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
        ExtraHosts: ["host.docker.internal:host-gateway"],
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        ReadonlyRootfs: true,
        Tmpfs: { "/tmp": "rw,nosuid,nodev,size=16m" },
        Binds: [`${dir}:/etc/perstack/gateway:ro`],
      },
    });
    await container.start();
    const info = await container.inspect();
    const port = info.NetworkSettings.Ports["8080/tcp"]?.[0]?.HostPort;
    url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      if ((await stdoutLines(container)).some((l) => l.includes('"gatewayReady"'))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 900_000);

  afterAll(async () => {
    await container?.remove({ force: true }).catch(() => {});
    await fake?.stop();
  });

  const call = (key: string) =>
    fetch(`${url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": key, "anthropic-version": "2023-06-01" },
      // With a tool, the fake takes it for the main conversation and answers from its script.
      body: JSON.stringify({
        model: "claude-sonnet-4-5",
        max_tokens: 64,
        tools: [{ name: "noop", description: "does nothing", input_schema: { type: "object" } }],
        messages: [{ role: "user", content: "hello" }],
      }),
    });

  it("refuses a missing or wrong token without contacting the model", async () => {
    await fake.script([{ text: "never" }]);
    expect((await call("wrong-token")).status).toBe(401);
    expect((await fetch(`${url}/v1/messages`, { method: "POST", body: "{}" })).status).toBe(401);
    expect(await fake.requests()).toHaveLength(0);
  });

  it("forwards a call with the token, and meters it on stdout with the usage the model reported", async () => {
    await fake.script([{ text: "hi from the model" }]);
    const response = await call(TOKEN);
    expect(response.status).toBe(200);
    expect(JSON.stringify(await response.json())).toContain("hi from the model");
    const [request] = (await fake.requests()).filter((r) => r.kind === "main");
    // The usage line is printed when the response has ended, which may be a moment after the client has it all.
    let usage: Array<{ type: string; usage?: { inputTokens: number; outputTokens: number }; status?: number }> = [];
    for (let i = 0; i < 50 && usage.length === 0; i++) {
      const lines = (await stdoutLines(container)).map((l) => JSON.parse(l) as { type: string; usage?: { inputTokens: number; outputTokens: number }; status?: number });
      usage = lines.filter((l) => l.type === "providerUsage" && l.status === 200);
      if (usage.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(usage).toHaveLength(1);
    expect(usage[0]!.usage).toMatchObject({ inputTokens: request!.usage!.inputTokens, outputTokens: request!.usage!.outputTokens });
    // Neither the real key nor the token is ever printed.
    const all = (await container.logs({ stdout: true, stderr: true })).toString();
    expect(all).not.toContain(REAL_KEY);
    expect(all).not.toContain(TOKEN);
  });

  it("refuses paths outside the provider's API", async () => {
    const response = await fetch(`${url}/v1/files`, { method: "GET", headers: { "x-api-key": TOKEN } });
    expect(response.status).toBe(403);
  });
});
