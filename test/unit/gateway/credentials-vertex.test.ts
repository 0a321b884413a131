// Vertex: the gateway gets an OAuth token with Google's auth library from a service-account file, and a fake upstream
// checks it. The file's token_uri points at a fake token endpoint that verifies the signed assertion; the metadata
// server is switched off, so nothing but loopback is contacted.
import { createVerify, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { upstreamAuthFromEnv } from "../../../src/gateway/credentials.ts";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";
import type { FakeUpstream, TestGateway } from "./gateway-harness.ts";
import { TOKEN, eventually, startTestGateway, startUpstream } from "./gateway-harness.ts";

const CLIENT_EMAIL = "gateway-test@perstack-test.iam.gserviceaccount.com";
const MODEL_PATH = "/v1/projects/perstack-test/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent";

const savedEnv = { METADATA_SERVER_DETECTION: process.env.METADATA_SERVER_DETECTION, GCE_METADATA_HOST: process.env.GCE_METADATA_HOST };

describe("OAuth token injection for google-vertex", () => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const issued: string[] = [];
  const assertionProblems: string[] = [];
  let tokenEndpoint: FakeUpstream;
  let upstream: FakeUpstream;
  let gateway: TestGateway;
  let dir: string;
  let keyJson: string;

  beforeAll(async () => {
    // The library must never look for a GCE metadata server (169.254.169.254) in these tests.
    process.env.METADATA_SERVER_DETECTION = "none";
    process.env.GCE_METADATA_HOST = "127.0.0.1:9";
    tokenEndpoint = await startUpstream((req, res) => {
      const form = new URLSearchParams(req.body.toString("utf8"));
      const [header, payload, signature] = (form.get("assertion") ?? "").split(".");
      const verified = createVerify("RSA-SHA256").update(`${header}.${payload}`).verify(publicKey, Buffer.from(signature ?? "", "base64url"));
      const claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as Record<string, unknown>;
      if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") assertionProblems.push("grant_type");
      if (!verified) assertionProblems.push("signature");
      if (claims.iss !== CLIENT_EMAIL) assertionProblems.push("iss");
      if (claims.scope !== "https://www.googleapis.com/auth/cloud-platform") assertionProblems.push(`scope ${String(claims.scope)}`);
      const token = `ya29.fake-${issued.length + 1}`;
      issued.push(token);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ access_token: token, expires_in: 3600, token_type: "Bearer" }));
    });
    upstream = await startUpstream((req, res) => {
      const ok = issued.length > 0 && req.headers.authorization === `Bearer ${issued.at(-1)!}`;
      res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
      res.end(
        JSON.stringify(
          ok
            ? { candidates: [{ content: { role: "model", parts: [{ text: "hi" }] } }], usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 2, totalTokenCount: 9 }, modelVersion: "gemini-2.5-pro" }
            : { error: { code: 401, message: "bad token", status: "UNAUTHENTICATED" } },
        ),
      );
    });
    dir = mkdtempSync(join(tmpdir(), "gateway-vertex-"));
    const keyFile = join(dir, "service-account.json");
    keyJson = JSON.stringify({
        type: "service_account",
        project_id: "perstack-test",
        private_key_id: "test-key-1",
        private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
        client_email: CLIENT_EMAIL,
        client_id: "1234567890",
        token_uri: `${tokenEndpoint.url}/token`,
    });
    writeFileSync(keyFile, keyJson);
    const config = { protocol: "vertex", upstream: upstream.url, allowInsecureUpstream: true, vertex: { project: "perstack-test", location: "us-central1" } };
    const auth = await upstreamAuthFromEnv(parseGatewayConfig({ ...config, listen: { host: "127.0.0.1", port: 0 } }, "test"), { GOOGLE_APPLICATION_CREDENTIALS: keyFile });
    gateway = await startTestGateway(config, { auth });
  });
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
    await tokenEndpoint.close();
    rmSync(dir, { recursive: true, force: true });
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it("injects the token the endpoint issued, fetched once and reused", async () => {
    const clientAuths: Array<Record<string, string>> = [{ "x-goog-api-key": TOKEN }, { authorization: `Bearer ${TOKEN}` }];
    for (const clientAuth of clientAuths) {
      const res = await fetch(`${gateway.url}${MODEL_PATH}`, { method: "POST", headers: { "content-type": "application/json", ...clientAuth }, body: '{"contents":[]}' });
      expect(res.status).toBe(200);
    }
    expect(assertionProblems).toEqual([]);
    expect(issued).toEqual(["ya29.fake-1"]);
    expect(tokenEndpoint.received.map((r) => r.url)).toEqual(["/token"]);
    for (const seen of upstream.received) {
      expect(seen.headers.authorization).toBe("Bearer ya29.fake-1");
      expect(seen.headers["x-goog-api-key"]).toBeUndefined();
    }
    await eventually(() => gateway.usageRecords().length === 2);
    expect(gateway.usageRecords()[0]).toMatchObject({ protocol: "vertex", model: "gemini-2.5-pro", usage: { inputTokens: 7, outputTokens: 2, totalTokens: 9 } });
  });

  it("refuses another project's or publisher's path, and no token at all", async () => {
    const before = upstream.received.length;
    for (const path of [MODEL_PATH.replace("perstack-test", "someone-else"), MODEL_PATH.replace("publishers/google", "publishers/other")]) {
      const res = await fetch(`${gateway.url}${path}`, { method: "POST", headers: { "x-goog-api-key": TOKEN }, body: "{}" });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: 403, status: "PERMISSION_DENIED" } });
    }
    expect((await fetch(`${gateway.url}${MODEL_PATH}`, { method: "POST", body: "{}" })).status).toBe(401);
    expect(upstream.received.length).toBe(before);
  });

  it("takes the credentials' JSON from PERSTACK_GATEWAY_GOOGLE_CREDENTIALS (what the host read), before any file", async () => {
    const config = parseGatewayConfig({ protocol: "vertex", upstream: upstream.url, allowInsecureUpstream: true, vertex: { project: "perstack-test", location: "us-central1" }, listen: { host: "127.0.0.1", port: 0 } }, "test");
    const auth = await upstreamAuthFromEnv(config, { PERSTACK_GATEWAY_GOOGLE_CREDENTIALS: keyJson, GOOGLE_APPLICATION_CREDENTIALS: join(dir, "absent.json") });
    const before = issued.length;
    const headers = await auth.headersFor({ method: "POST", url: new URL(`${upstream.url}${MODEL_PATH}`), headers: {}, body: Buffer.alloc(0) });
    expect(issued.length).toBe(before + 1);
    expect(headers).toEqual({ authorization: `Bearer ${issued.at(-1)!}` });
    await expect(upstreamAuthFromEnv(config, { PERSTACK_GATEWAY_GOOGLE_CREDENTIALS: "{not json" })).rejects.toThrow("PERSTACK_GATEWAY_GOOGLE_CREDENTIALS is not JSON");
    await expect(upstreamAuthFromEnv(config, { PERSTACK_GATEWAY_GOOGLE_CREDENTIALS: JSON.stringify({ type: "service_account" }) })).rejects.toThrow(/lacks client_email or private_key/);
  });
});
