// The per-run token as the agent's client presents it. Each SDK puts its "API key" somewhere else, and the agent's
// environment holds the token in the provider's key variable, so every usual place is accepted.
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

/** Request headers that carry a provider credential; the gateway strips all of them before forwarding. */
export const CLIENT_AUTH_HEADERS = [
  "authorization",
  "proxy-authorization",
  "x-api-key",
  "anthropic-api-key",
  "x-goog-api-key",
  "api-key",
  // A client's own SigV4 or billing redirection must not reach the upstream next to the gateway's.
  "x-amz-date",
  "x-amz-security-token",
  "x-amz-content-sha256",
  "x-goog-user-project",
  "cookie",
] as const;

/** Whether a query parameter carries a credential (Gemini's `key`, OAuth's `access_token`, presigned SigV4). */
export function isAuthQueryParam(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === "key" || lower === "access_token" || lower.startsWith("x-amz-");
}

function headerValues(headers: IncomingHttpHeaders, name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Every value the request offers as its key. */
export function presentedTokens(headers: IncomingHttpHeaders, query: URLSearchParams): string[] {
  const tokens: string[] = [];
  for (const value of headerValues(headers, "authorization")) {
    const bearer = /^Bearer\s+(.+)$/i.exec(value.trim());
    if (bearer?.[1]) tokens.push(bearer[1].trim());
  }
  for (const name of ["x-api-key", "anthropic-api-key", "x-goog-api-key", "api-key"]) {
    tokens.push(...headerValues(headers, name).map((v) => v.trim()));
  }
  tokens.push(...query.getAll("key"));
  return tokens.filter((t) => t.length > 0);
}

// Hashing first gives timingSafeEqual equal-length inputs and hides the token's length.
const digest = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest();

/** A check of presented tokens against the run's token, in time that does not depend on where they differ. */
export function tokenChecker(expected: string): (presented: readonly string[]) => boolean {
  const expectedDigest = digest(expected);
  return (presented) => {
    let ok = false;
    for (const token of presented) ok = timingSafeEqual(digest(token), expectedDigest) || ok;
    return ok;
  };
}
