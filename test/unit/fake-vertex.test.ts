import { createSign, generateKeyPairSync } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { JWT, gaxios } from "google-auth-library";
import { describe, expect, it } from "vitest";
import { fetchRequestLog, useFakeModels } from "../support/fake-models-server.ts";

const fake = useFakeModels("vertex");
const { setScript, requestLog } = fake;

const CLIENT_EMAIL = "fake-vertex@perstack-test.iam.gserviceaccount.com";
const SCOPE = "https://www.googleapis.com/auth/cloud-platform";
const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
const PREFIX = "/v1beta1/projects/perstack-test/locations/us-central1/publishers/google/models";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
const privateKeyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();

interface Part {
  text?: string;
  thought?: boolean;
  functionCall?: { name: string; args: Record<string, unknown> };
}

interface GenerateContentResponse {
  candidates: Array<{ content: { role: string; parts: Part[] }; finishReason?: string }>;
  usageMetadata: Record<string, number>;
  modelVersion: string;
}

interface TokenLogBody {
  grant_type: string | null;
  jwtHeader?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  outcome: string;
}

async function registerKey(body: Record<string, unknown> = { publicKeyPem, clientEmail: CLIENT_EMAIL }): Promise<Response> {
  return fetch(`${fake.url}/_oauth`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

/** google-auth-library's JWT client for a service-account key, its token request sent to the fake's /token. */
function jwtClient(key: string = privateKeyPem, email: string = CLIENT_EMAIL): JWT {
  const target = new URL(`${fake.url}/token`);
  const transporter = new gaxios.Gaxios();
  transporter.interceptors.request.add({
    resolved: (options) => {
      if (options.url.href === GOOGLE_TOKEN_URL) options.url = target;
      return Promise.resolve(options);
    },
  });
  return new JWT({ email, key, scopes: [SCOPE], transporter });
}

function signJwt(claims: Record<string, unknown>, key: KeyObject = privateKey, header: Record<string, unknown> = { alg: "RS256", typ: "JWT" }): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
  const signingInput = `${encode(header)}.${encode(claims)}`;
  const signature = createSign("RSA-SHA256").update(signingInput).sign(key).toString("base64url");
  return `${signingInput}.${signature}`;
}

function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  return { iss: CLIENT_EMAIL, scope: SCOPE, aud: GOOGLE_TOKEN_URL, iat, exp: iat + 3600, ...overrides };
}

function postToken(assertion: string, grantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"): Promise<Response> {
  return fetch(`${fake.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: grantType, assertion }).toString(),
  });
}

async function issuedToken(): Promise<string> {
  expect((await registerKey()).status).toBe(200);
  const { token } = await jwtClient().getAccessToken();
  expect(token).toMatch(/^ya29\./);
  return token!;
}

const userTurn = { role: "user", parts: [{ text: "hi" }] };
const modelTurn = { role: "model", parts: [{ functionCall: { name: "writeTextFile", args: {} } }] };
const toolResult = { role: "user", parts: [{ functionResponse: { name: "writeTextFile", response: { ok: true } } }] };

function mainBody(contents: unknown[]): Record<string, unknown> {
  return {
    contents,
    systemInstruction: { parts: [{ text: "You are a careful expert." }] },
    tools: [{ functionDeclarations: [{ name: "writeTextFile", parameters: { type: "object" } }] }],
    generationConfig: { thinkingConfig: { includeThoughts: true } },
  };
}

function post(
  token: string | undefined,
  body: unknown,
  options: { action?: "generateContent" | "streamGenerateContent?alt=sse" | "streamGenerateContent"; model?: string; version?: string } = {},
): Promise<Response> {
  const prefix = options.version === undefined ? PREFIX : PREFIX.replace("/v1beta1/", `/${options.version}/`);
  return fetch(`${fake.url}${prefix}/${options.model ?? "gemini-2.5-pro"}:${options.action ?? "streamGenerateContent?alt=sse"}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  });
}

function parseSse(text: string): GenerateContentResponse[] {
  return text
    .split("\n\n")
    .filter((c) => c.trim().length > 0)
    .map((c) => JSON.parse(c.replace(/^data: /, "")) as GenerateContentResponse);
}

function assemble(chunks: GenerateContentResponse[]): Part[] {
  const parts: Part[] = [];
  for (const chunk of chunks) {
    for (const part of chunk.candidates[0]!.content.parts) {
      const last = parts.at(-1);
      if (part.text !== undefined && last?.text !== undefined && Boolean(last.thought) === Boolean(part.thought)) last.text += part.text;
      else parts.push({ ...part });
    }
  }
  return parts;
}

describe("fake Vertex AI OAuth token endpoint", () => {
  it("issues a token to google-auth-library's JWT client and logs the claims, never the assertion", async () => {
    expect((await registerKey()).status).toBe(200);
    const client = jwtClient();
    const { token } = await client.getAccessToken();
    expect(token).toMatch(/^ya29\.fake-/);
    expect(client.credentials.expiry_date).toBeGreaterThan(Date.now() + 3500_000);

    const log = await requestLog();
    expect(log).toHaveLength(1);
    const [entry] = log;
    expect(entry).toMatchObject({ method: "POST", url: "/token", kind: "other" });
    const body = entry!.body as TokenLogBody;
    expect(body).toEqual({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      jwtHeader: { alg: "RS256" },
      claims: { iss: CLIENT_EMAIL, scope: SCOPE, aud: GOOGLE_TOKEN_URL, iat: expect.any(Number), exp: expect.any(Number) },
      outcome: "issued",
    });
    expect(JSON.stringify(log)).not.toContain("assertion");
    expect(JSON.stringify(log)).not.toContain(token!);

    const state = (await (await fetch(`${fake.url}/_oauth`)).json()) as { keys: unknown[]; issuedTokens: number };
    expect(state.keys).toContainEqual({ clientEmail: CLIENT_EMAIL });
    expect(state.issuedTokens).toBeGreaterThan(0);
  });

  it("accepts an assertion addressed to the URL it was posted to", async () => {
    expect((await registerKey()).status).toBe(200);
    const res = await postToken(signJwt(claims({ aud: `${fake.url}/token` })));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ access_token: expect.stringMatching(/^ya29\./), expires_in: 3600, token_type: "Bearer" });
  });

  it("refuses a bad signature, a wrong scope, an unknown account or key, bad times, audience, alg and grant type", async () => {
    expect((await registerKey()).status).toBe(200);
    const refusals: Array<[string, Promise<Response>, string]> = [
      ["other key", postToken(signJwt(claims(), other.privateKey)), "invalid_grant"],
      ["tampered", postToken(signJwt(claims()).replace(/\.[^.]+\./, `.${Buffer.from(JSON.stringify(claims({ exp: 1 }))).toString("base64url")}.`)), "invalid_grant"],
      ["wrong scope", postToken(signJwt(claims({ scope: "https://www.googleapis.com/auth/devstorage.read_only" }))), "invalid_scope"],
      ["unknown account", postToken(signJwt(claims({ iss: "someone@else.iam.gserviceaccount.com" }))), "invalid_grant"],
      ["expired", postToken(signJwt(claims({ iat: 1_000_000, exp: 1_003_600 }))), "invalid_grant"],
      ["too long", postToken(signJwt(claims({ exp: Math.floor(Date.now() / 1000) + 7200 }))), "invalid_grant"],
      ["audience", postToken(signJwt(claims({ aud: "https://example.com/token" }))), "invalid_grant"],
      ["alg", postToken(signJwt(claims(), privateKey, { alg: "HS256" })), "invalid_grant"],
      ["garbage", postToken("not-a-jwt"), "invalid_grant"],
      ["grant type", postToken(signJwt(claims()), "client_credentials"), "unsupported_grant_type"],
    ];
    for (const [why, pending, error] of refusals) {
      const res = await pending;
      expect({ why, status: res.status }).toEqual({ why, status: 400 });
      expect({ why, body: await res.json() }).toEqual({ why, body: { error, error_description: expect.any(String) } });
    }
    const outcomes = (await requestLog()).map((r) => (r.body as TokenLogBody).outcome);
    expect(outcomes).toHaveLength(refusals.length);
    expect(outcomes.every((o) => o !== "issued")).toBe(true);
    expect(outcomes.slice(0, 2)).toEqual(["invalid_grant: Invalid JWT Signature.", "invalid_grant: Invalid JWT Signature."]);
    expect(outcomes[2]).toMatch(/^invalid_scope: /);
  });

  it("refuses every assertion while no key is registered", async () => {
    expect((await fetch(`${fake.url}/_oauth`, { method: "DELETE" })).status).toBe(200);
    const res = await postToken(signJwt(claims()));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "invalid_grant", error_description: expect.stringContaining("/_oauth") });
    await expect(jwtClient().getAccessToken()).rejects.toThrow(/invalid_grant/);
  });

  it("rejects a control request without a usable public key", async () => {
    expect((await registerKey({ clientEmail: CLIENT_EMAIL })).status).toBe(400);
    expect((await registerKey({ publicKeyPem: "not a key" })).status).toBe(400);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
    expect((await registerKey({ publicKeyPem: ec })).status).toBe(400);
    const ok = await registerKey();
    expect(await ok.json()).toEqual({ ok: true, clientEmail: CLIENT_EMAIL, tokenUri: `${fake.url}/token` });
  });
});

describe("fake Vertex AI Gemini server", () => {
  it("refuses a bearer it did not issue, and no bearer, with Google's 401, leaving the script alone", async () => {
    await setScript([{ text: "scripted" }]);
    const unknown = await post("ya29.not-issued-here", mainBody([userTurn]));
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(await unknown.json()).toEqual({
      error: {
        code: 401,
        message: expect.stringMatching(/^Request had invalid authentication credentials/),
        status: "UNAUTHENTICATED",
        details: [expect.objectContaining({ "@type": "type.googleapis.com/google.rpc.ErrorInfo", metadata: expect.objectContaining({ service: "aiplatform.googleapis.com" }) })],
      },
    });
    const none = await post(undefined, mainBody([userTurn]));
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: 401, status: "UNAUTHENTICATED", message: expect.stringMatching(/missing required authentication/) } });
    // An API key is not a Vertex credential either.
    const keyed = await fetch(`${fake.url}${PREFIX}/gemini-2.5-pro:generateContent`, { method: "POST", headers: { "x-goog-api-key": "k" }, body: "{}" });
    expect(keyed.status).toBe(401);

    const log = await requestLog();
    expect(log.map((r) => [r.kind, r.auth, r.model])).toEqual([
      ["other", "unknown-bearer", "gemini-2.5-pro"],
      ["other", "none", "gemini-2.5-pro"],
      ["other", "none", "gemini-2.5-pro"],
    ]);
    expect(log[0]!.headers.authorization).toBe("<redacted>");
    expect(JSON.stringify(log)).not.toContain("not-issued-here");

    const token = await issuedToken();
    expect(assemble(parseSse(await (await post(token, mainBody([userTurn]))).text()))).toEqual([{ text: "scripted" }]);
  });

  it("replies to generateContent with the Gemini response, and logs the issued token redacted", async () => {
    const token = await issuedToken();
    await setScript([{ text: "Writing.", toolUse: [{ name: "writeTextFile", input: { path: "a.txt", text: "hi" } }] }]);
    const res = await post(token, mainBody([userTurn]), { action: "generateContent", version: "v1" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as GenerateContentResponse;
    expect(body.candidates[0]).toMatchObject({
      content: { role: "model", parts: [{ text: "Writing." }, { functionCall: { name: "writeTextFile", args: { path: "a.txt", text: "hi" } } }] },
      finishReason: "STOP",
    });
    expect(body.modelVersion).toBe("gemini-2.5-pro");

    const [entry] = await requestLog();
    expect(entry).toMatchObject({ kind: "main", turn: 0, auth: "issued-token", model: "gemini-2.5-pro", firstUserText: "hi" });
    expect(entry!.url).toBe("/v1/projects/perstack-test/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent");
    expect(entry!.headers.authorization).toBe("<redacted>");
    expect(JSON.stringify(entry)).not.toContain(token);
    const usage = body.usageMetadata;
    expect(entry!.usage).toEqual({
      vendor: usage,
      inputTokens: usage.promptTokenCount,
      outputTokens: usage.candidatesTokenCount! + (usage.thoughtsTokenCount ?? 0),
    });
  });

  it("streams SSE with ?alt=sse and a JSON array without it; turns counted by model turns", async () => {
    const token = await issuedToken();
    await setScript([{ thinking: "Think.", text: "first answer" }, { text: "second answer" }]);
    const sse = await post(token, mainBody([userTurn]));
    expect(sse.headers.get("content-type")).toBe("text/event-stream");
    const chunks = parseSse(await sse.text());
    expect(chunks.length).toBeGreaterThan(2);
    expect(assemble(chunks)).toEqual([{ thought: true, text: "Think." }, { text: "first answer" }]);

    const array = await post(token, mainBody([userTurn, modelTurn, toolResult]), { action: "streamGenerateContent" });
    expect(array.headers.get("content-type")).toMatch(/^application\/json/);
    const arrayChunks = JSON.parse(await array.text()) as GenerateContentResponse[];
    expect(arrayChunks.length).toBeGreaterThan(1);
    expect(assemble(arrayChunks)).toEqual([{ text: "second answer" }]);
    expect(arrayChunks.at(-1)!.usageMetadata.cachedContentTokenCount).toBeGreaterThan(0);

    const log = await requestLog();
    const main = log.filter((r) => r.kind === "main");
    expect(main.map((r) => r.turn)).toEqual([0, 1]);
    expect(main[0]!.usage!.vendor).toEqual(chunks.at(-1)!.usageMetadata);
    expect(main[1]!.usage!.vendor).toEqual(arrayChunks.at(-1)!.usageMetadata);
  });

  it("answers error steps `times` attempts with the Google error JSON", async () => {
    const token = await issuedToken();
    await setScript([{ error: { status: 429, type: "rate_limit_error", message: "Resource exhausted." }, times: 2 }, { text: "recovered" }]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await post(token, mainBody([userTurn]));
      expect(res.status).toBe(429);
      expect(await res.json()).toEqual({ error: { code: 429, message: "Resource exhausted.", status: "RESOURCE_EXHAUSTED" } });
    }
    expect(assemble(parseSse(await (await post(token, mainBody([userTurn]))).text()))).toEqual([{ text: "recovered" }]);
    expect((await requestLog()).filter((r) => r.kind === "main").map((r) => r.usage === undefined)).toEqual([true, true, false]);
  });

  it("keeps its own script and log, apart from the Gemini API fake on the same server", async () => {
    const token = await issuedToken();
    await setScript([{ text: "from vertex" }]);
    const gemini = await fetch(`${fake.url}/v1beta/models/gemini-2.5-pro:generateContent`, {
      method: "POST",
      headers: { "x-goog-api-key": "k" },
      body: JSON.stringify(mainBody([userTurn])),
    });
    expect(((await gemini.json()) as GenerateContentResponse).candidates[0]!.content.parts[0]!.text).toMatch(/no more steps/);
    const vertex = await post(token, mainBody([userTurn]), { action: "generateContent" });
    expect(((await vertex.json()) as GenerateContentResponse).candidates[0]!.content.parts).toEqual([{ text: "from vertex" }]);
    expect((await requestLog()).filter((r) => r.kind === "main")).toHaveLength(1);
    expect(await fetchRequestLog(fake.url, "gemini")).toHaveLength(1);
  });

  it("answers an unknown path (with a valid token) with Google's 404", async () => {
    const token = await issuedToken();
    const res = await fetch(`${fake.url}/v1beta1/projects/p/locations/l/publishers/google/models/m:nope`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: "{}",
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 404, status: "NOT_FOUND" } });
  });
});
