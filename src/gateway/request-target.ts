// From the request line the agent sent to the one upstream URL the gateway may call. Pure: the server decides what
// to do with a refusal.
import { isAuthQueryParam } from "./client-token.js";

export type RequestTarget =
  | { ok: true; path: string; query: URLSearchParams }
  | { ok: false; reason: "proxy-request" };

/**
 * Splits a request-target into its raw path and query. Only origin-form (`/path?query`) is accepted: absolute-form
 * (`GET http://host/path`) is what a client sends to a forward proxy, and the gateway is none, whatever the Host
 * header claims. The path is kept raw (not normalized by URL parsing), so the traversal check sees what was sent.
 */
export function parseRequestTarget(rawTarget: string): RequestTarget {
  let target = rawTarget;
  if (!target.startsWith("/")) return { ok: false, reason: "proxy-request" };
  const hash = target.indexOf("#");
  if (hash >= 0) target = target.slice(0, hash);
  const question = target.indexOf("?");
  const path = question >= 0 ? target.slice(0, question) : target;
  const query = new URLSearchParams(question >= 0 ? target.slice(question + 1) : "");
  return { ok: true, path, query };
}

// RFC 3986 unreserved characters stay; everything else is escaped, so the query SigV4 signs is the one sent.
const encodeQueryPart = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The upstream URL for an accepted path and query: under the upstream's path prefix, without any auth parameter,
 * with the config's fixed parameters (Azure's api-version) in place of the client's of the same name.
 */
export function upstreamUrl(upstream: URL, path: string, query: URLSearchParams, fixed: Readonly<Record<string, string>> = {}): URL {
  const prefix = upstream.pathname.replace(/\/+$/, "");
  const kept = [...query].filter(([name]) => !isAuthQueryParam(name) && !Object.hasOwn(fixed, name)).concat(Object.entries(fixed));
  const search = kept.map(([name, value]) => `${encodeQueryPart(name)}=${encodeQueryPart(value)}`).join("&");
  return new URL(`${upstream.origin}${prefix}${path}${search ? `?${search}` : ""}`);
}
