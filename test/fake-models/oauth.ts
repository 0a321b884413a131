// A stand-in for Google's OAuth 2.0 token endpoint, as far as service-account keys use it: google-auth-library's
// JWT client posts a signed assertion to the key's token_uri and gets a bearer token, which the Vertex fake
// (vertex.ts) then accepts. The assertion is checked like Google does it, against a public key a test registers.
//
//   POST /token    form `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`
//                  200 {access_token, expires_in: 3600, token_type: "Bearer"}; else 400 {error, error_description}
//   POST /_oauth   {"publicKeyPem": "...", "clientEmail": "..."}   registers a key (control endpoint, not Google's):
//                  assertions whose `iss` is clientEmail (any iss without clientEmail) are verified with it
//   GET  /_oauth   {keys: [{clientEmail}], issuedTokens: n}
//   DELETE /_oauth forgets every key and issued token
//
// The checks: the JWT header's alg is RS256; the RS256 signature verifies against a registered key for `iss`;
// `aud` is the URL the assertion was posted to or Google's token URL (google-auth-library 11 always signs for
// the latter); `scope` (space-separated) contains cloud-platform; `exp` lies in the future and at most an hour
// after `iat`. Keys and issued tokens live as long as the server (a new /_script does not clear them: the gateway
// keeps its token for an hour). Token requests are logged in the Vertex log (`/_requests?protocol=vertex`) as
// kind "other", url "/token", with a body of the grant type, the JWT header and claims and the outcome, never
// the assertion itself.
//
// Dependency-free and erasable TypeScript only, like the rest of the fake server.

import type { KeyObject } from "node:crypto";
import { createPublicKey, randomBytes, verify } from "node:crypto";
import type { ApiRequest, ScriptState } from "./script.ts";
import { isObject, sendJson } from "./script.ts";

export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
export const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";
const JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_LIFETIME_SECONDS = 3600;
/** Google allows some clock skew on iat/exp. */
const SKEW_SECONDS = 300;

export type BearerCheck = "issued-token" | "expired-token" | "unknown-bearer" | "none";

/** What the log keeps of a token request. */
export interface TokenRequestLog {
  grant_type: string | null;
  jwtHeader?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** "issued", or the error code and description the request was refused with. */
  outcome: string;
}

interface RegisteredKey {
  clientEmail: string | undefined;
  key: KeyObject;
}

interface IssuedToken {
  clientEmail: string;
  expiresAt: number;
}

class GrantError extends Error {
  readonly code: string;
  constructor(code: string, description: string) {
    super(description);
    this.code = code;
  }
}

function decodeSegment(segment: string | undefined): Record<string, unknown> {
  if (segment === undefined || !/^[A-Za-z0-9_-]*$/.test(segment)) throw new GrantError("invalid_grant", "Invalid JWT.");
  try {
    const value = JSON.parse(Buffer.from(segment, "base64url").toString("utf8")) as unknown;
    if (isObject(value)) return value;
  } catch {
    // falls through
  }
  throw new GrantError("invalid_grant", "Invalid JWT.");
}

export interface OAuthServer {
  /** Answers POST /token, logging the request (claims only) in `log`. */
  handleToken(request: ApiRequest, log: ScriptState): void;
  /** Answers /_oauth (the control endpoint). */
  handleControl(request: ApiRequest): void;
  /** Classifies a request's Authorization header. */
  checkBearer(authorization: string | string[] | undefined): BearerCheck;
}

export function createOAuth(): OAuthServer {
  let keys: RegisteredKey[] = [];
  const issued = new Map<string, IssuedToken>();

  /** The verified claims of an assertion posted to `postedTo`, or a GrantError; fills `entry` as it goes. */
  function checkAssertion(assertion: string, postedTo: string[], entry: TokenRequestLog): Record<string, unknown> {
    const segments = assertion.split(".");
    if (segments.length !== 3) throw new GrantError("invalid_grant", "Invalid JWT.");
    const [headerPart, claimsPart, signaturePart] = segments as [string, string, string];
    const header = decodeSegment(headerPart);
    const claims = decodeSegment(claimsPart);
    entry.jwtHeader = header;
    entry.claims = claims;
    if (header.alg !== "RS256") throw new GrantError("invalid_grant", `Invalid JWT: unsupported alg ${String(header.alg)}.`);
    if (keys.length === 0) {
      throw new GrantError("invalid_grant", "No public key is registered with the fake token endpoint (POST /_oauth).");
    }
    const iss = claims.iss;
    if (typeof iss !== "string" || iss === "") throw new GrantError("invalid_grant", "Invalid JWT: no iss claim.");
    const candidates = keys.filter((k) => k.clientEmail === undefined || k.clientEmail === iss);
    if (candidates.length === 0) throw new GrantError("invalid_grant", "Invalid grant: account not found");
    const signed = Buffer.from(`${headerPart}.${claimsPart}`, "utf8");
    const signature = Buffer.from(signaturePart, "base64url");
    if (!candidates.some((k) => verify("RSA-SHA256", signed, k.key, signature))) {
      throw new GrantError("invalid_grant", "Invalid JWT Signature.");
    }
    const aud = claims.aud;
    if (typeof aud !== "string" || (aud !== GOOGLE_TOKEN_URL && !postedTo.includes(aud))) {
      throw new GrantError("invalid_grant", `Invalid JWT: Failed audience check. The right audience is ${GOOGLE_TOKEN_URL}`);
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = claims.exp;
    const iat = typeof claims.iat === "number" ? claims.iat : undefined;
    const timely =
      typeof exp === "number" &&
      exp > now - SKEW_SECONDS &&
      (iat === undefined || (iat <= now + SKEW_SECONDS && exp - iat <= TOKEN_LIFETIME_SECONDS)) &&
      exp <= now + TOKEN_LIFETIME_SECONDS + SKEW_SECONDS;
    if (!timely) {
      throw new GrantError(
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
      );
    }
    const scopes = typeof claims.scope === "string" ? claims.scope.split(/\s+/) : [];
    if (!scopes.includes(CLOUD_PLATFORM_SCOPE)) {
      throw new GrantError("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    return claims;
  }

  function handleToken(request: ApiRequest, log: ScriptState): void {
    const { req, res, method, url, raw } = request;
    const form = new URLSearchParams(raw);
    const entry: TokenRequestLog = { grant_type: form.get("grant_type"), outcome: "" };
    // The log entry is made now and filled in below: the assertion itself never reaches it.
    log.record(req, entry, url.pathname);
    const refuse = (status: number, error: string, description: string): void => {
      entry.outcome = `${error}: ${description}`;
      sendJson(res, status, { error, error_description: description });
    };
    if (method !== "POST") {
      refuse(405, "invalid_request", `${method} is not allowed; POST the assertion.`);
      return;
    }
    if (entry.grant_type !== JWT_BEARER) {
      refuse(400, "unsupported_grant_type", `Invalid grant_type: ${entry.grant_type ?? ""}`);
      return;
    }
    const host = req.headers.host ?? "";
    const postedTo = [`http://${host}${url.pathname}`, `https://${host}${url.pathname}`];
    let claims: Record<string, unknown>;
    try {
      claims = checkAssertion(form.get("assertion") ?? "", postedTo, entry);
    } catch (err) {
      if (!(err instanceof GrantError)) throw err;
      refuse(400, err.code, err.message);
      return;
    }
    const token = `ya29.fake-${randomBytes(24).toString("base64url")}`;
    issued.set(token, { clientEmail: String(claims.iss), expiresAt: Date.now() + TOKEN_LIFETIME_SECONDS * 1000 });
    entry.outcome = "issued";
    sendJson(res, 200, { access_token: token, expires_in: TOKEN_LIFETIME_SECONDS, token_type: "Bearer" }, {
      "cache-control": "no-cache, no-store, max-age=0, must-revalidate",
    });
  }

  function handleControl(request: ApiRequest): void {
    const { res, method, parsed, req } = request;
    if (method === "GET") {
      sendJson(res, 200, { keys: keys.map((k) => ({ clientEmail: k.clientEmail ?? null })), issuedTokens: issued.size });
      return;
    }
    if (method === "DELETE") {
      keys = [];
      issued.clear();
      sendJson(res, 200, { ok: true });
      return;
    }
    const body = parsed.ok && isObject(parsed.value) ? parsed.value : undefined;
    const pem = body?.publicKeyPem;
    const clientEmail = body?.clientEmail;
    if (method !== "POST" || typeof pem !== "string" || (clientEmail !== undefined && typeof clientEmail !== "string")) {
      sendJson(res, 400, { error: { message: 'expected POST {"publicKeyPem": "...", "clientEmail": "..."}' } });
      return;
    }
    let key: KeyObject;
    try {
      key = createPublicKey(pem);
    } catch (err) {
      sendJson(res, 400, { error: { message: `publicKeyPem is not a public key or certificate: ${String(err)}` } });
      return;
    }
    if (key.asymmetricKeyType !== "rsa") {
      sendJson(res, 400, { error: { message: `RS256 needs an RSA key, not ${String(key.asymmetricKeyType)}` } });
      return;
    }
    // A key registered again for the same account replaces the earlier one.
    keys = [...keys.filter((k) => k.clientEmail !== clientEmail), { clientEmail, key }];
    sendJson(res, 200, { ok: true, clientEmail: clientEmail ?? null, tokenUri: `http://${req.headers.host ?? ""}/token` });
  }

  function checkBearer(authorization: string | string[] | undefined): BearerCheck {
    const value = Array.isArray(authorization) ? authorization[0] : authorization;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(value ?? "");
    if (!match) return "none";
    const token = issued.get(match[1]!);
    if (!token) return "unknown-bearer";
    return token.expiresAt > Date.now() ? "issued-token" : "expired-token";
  }

  return { handleToken, handleControl, checkBearer };
}
