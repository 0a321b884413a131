// Bedrock: the gateway signs with SigV4, and a fake upstream verifies the signature the way AWS does, recomputing it
// with the known test secret over the request it actually received (body included).
import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bedrockSignatureV4 } from "../../../src/gateway/bedrock-signer.ts";
import { upstreamAuthFromEnv } from "../../../src/gateway/credentials.ts";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";
import type { FakeUpstream, ReceivedRequest, TestGateway } from "./gateway-harness.ts";
import { TOKEN, eventually, startTestGateway, startUpstream } from "./gateway-harness.ts";

const REGION = "us-east-1";
const CREDENTIALS = { accessKeyId: "AKIDEXAMPLEGATEWAY", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", sessionToken: "session-token-example" };

interface Verdict {
  ok: boolean;
  why?: string;
}

/** AWS's check, done with AWS's signer: same method, host, path, query, signed headers and body -> same signature. */
async function verifySigV4(req: ReceivedRequest, body: Buffer = req.body): Promise<Verdict> {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
    String(req.headers.authorization),
  );
  if (!auth) return { ok: false, why: `not a SigV4 authorization: ${String(req.headers.authorization)}` };
  const [, keyId, , region, service, signedHeaderList, signature] = auth;
  if (keyId !== CREDENTIALS.accessKeyId || region !== REGION || service !== "bedrock") return { ok: false, why: "wrong scope" };
  const signedHeaders = signedHeaderList!.split(";");
  for (const required of ["host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"]) {
    if (!signedHeaders.includes(required)) return { ok: false, why: `${required} is not signed` };
  }
  if (req.headers["x-amz-content-sha256"] !== createHash("sha256").update(body).digest("hex")) return { ok: false, why: "body hash mismatch" };
  const headers: Record<string, string> = {};
  // The content hash is left out so the signer hashes the body itself.
  for (const name of signedHeaders) if (name !== "x-amz-content-sha256") headers[name] = String(req.headers[name]);
  const amzDate = String(req.headers["x-amz-date"]);
  const signingDate = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const [path, search = ""] = req.url.split("?");
  const query: Record<string, string> = Object.fromEntries(new URLSearchParams(search));
  const host = String(req.headers.host);
  const expected = await bedrockSignatureV4(REGION, CREDENTIALS).sign(
    { method: req.method, protocol: "https:", hostname: host.split(":")[0]!, path: path!, query, headers, body },
    { signingDate },
  );
  const expectedSignature = /Signature=([0-9a-f]{64})$/.exec(expected.headers.authorization!)?.[1];
  return expectedSignature === signature ? { ok: true } : { ok: false, why: "signature mismatch" };
}

describe("SigV4 signing for amazon-bedrock", () => {
  let upstream: FakeUpstream;
  let gateway: TestGateway;
  const verdicts: Verdict[] = [];
  beforeAll(async () => {
    upstream = await startUpstream((req, res: ServerResponse) => {
      void verifySigV4(req).then((verdict) => {
        verdicts.push(verdict);
        if (!verdict.ok) {
          res.writeHead(403, { "content-type": "application/json" });
          res.end(JSON.stringify({ message: `The request signature we calculated does not match: ${verdict.why}` }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ output: { message: { role: "assistant", content: [{ text: "hi" }] } }, stopReason: "end_turn", usage: { inputTokens: 12, outputTokens: 3, totalTokens: 15 } }));
      });
    });
    const config = { protocol: "bedrock", upstream: upstream.url, allowInsecureUpstream: true, bedrock: { region: REGION } };
    const env = { AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey, AWS_SESSION_TOKEN: CREDENTIALS.sessionToken };
    const auth = await upstreamAuthFromEnv(parseGatewayConfig({ ...config, listen: { host: "127.0.0.1", port: 0 } }, "test"), env);
    gateway = await startTestGateway(config, { auth });
  });
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  it.each([
    "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
    "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-5/converse-stream",
  ])("signs %s so that the upstream's own check passes", async (path) => {
    verdicts.length = 0;
    const body = JSON.stringify({ messages: [{ role: "user", content: [{ text: "héllo" }] }] });
    const res = await fetch(`${gateway.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", "x-amz-date": "20000101T000000Z", "x-amz-security-token": "client-junk" },
      body,
    });
    expect(verdicts).toEqual([{ ok: true }]);
    expect(res.status).toBe(200);
    const seen = upstream.received.at(-1)!;
    expect(seen.url).toBe(path);
    expect(seen.body.toString("utf8")).toBe(body);
    expect(seen.headers["x-amz-security-token"]).toBe(CREDENTIALS.sessionToken);
    expect(JSON.stringify(seen.headers)).not.toContain(TOKEN);
    expect(JSON.stringify(seen.headers)).not.toContain(CREDENTIALS.secretAccessKey);
  });

  it("produces a signature that covers the body: the same headers over another body do not verify", async () => {
    const seen = upstream.received.at(-1)!;
    expect(await verifySigV4(seen)).toEqual({ ok: true });
    const tampered = Buffer.from(seen.body.toString("utf8").replace("héllo", "hello"));
    expect((await verifySigV4(seen, tampered)).ok).toBe(false);
    // Even with a matching content-hash header, the signature does not fit another body.
    const forged = { ...seen, headers: { ...seen.headers, "x-amz-content-sha256": createHash("sha256").update(tampered).digest("hex") } };
    expect(await verifySigV4(forged, tampered)).toEqual({ ok: false, why: "signature mismatch" });
  });

  it("meters the Converse response", async () => {
    gateway.records.length = 0;
    await fetch(`${gateway.url}/model/amazon.nova-lite-v1%3A0/converse`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: "{}",
    });
    await eventually(() => gateway.usageRecords().length === 1);
    expect(gateway.usageRecords()[0]).toMatchObject({ protocol: "bedrock", status: 200, model: "amazon.nova-lite-v1:0", usage: { inputTokens: 12, outputTokens: 3 } });
  });

  it("refuses paths outside the runtime API and requests without the token", async () => {
    const before = upstream.received.length;
    const wrongPath = await fetch(`${gateway.url}/guardrail/x/version/1/apply`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{}" });
    expect(wrongPath.status).toBe(403);
    expect(wrongPath.headers.get("x-amzn-errortype")).toBe("AccessDeniedException");
    const noToken = await fetch(`${gateway.url}/model/x/converse`, { method: "POST", body: "{}" });
    expect(noToken.status).toBe(401);
    expect(upstream.received.length).toBe(before);
  });

  it("needs an access key pair or a Bedrock API key, and names the variables", async () => {
    const config = parseGatewayConfig({ protocol: "bedrock", upstream: "https://bedrock-runtime.us-east-1.amazonaws.com", bedrock: { region: REGION }, listen: { host: "127.0.0.1", port: 0 } }, "test");
    await expect(upstreamAuthFromEnv(config, { AWS_ACCESS_KEY_ID: "x" })).rejects.toThrow(/AWS_SECRET_ACCESS_KEY/);
    await expect(upstreamAuthFromEnv(config, { AWS_BEARER_TOKEN_BEDROCK: "bedrock-key" })).resolves.toBeDefined();
  });
});
