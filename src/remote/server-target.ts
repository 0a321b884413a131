// PURE: which perstack serve a command talks to (`--server <url>` or PERSTACK_SERVER) and with which tenant token
// (`--token` or PERSTACK_TOKEN), checked before anything is read or sent.
//
// Plain http is refused for any host but this machine's loopback unless --allow-http says the network is trusted:
// the bearer token travels with every request, and a run uploads the workspace (source code) and downloads what the
// agent wrote. Over a network anyone on the path could read both, and replay the token to spend the tenant's budget.
// Loopback covers a server on this machine and one reached through an SSH tunnel (`ssh -L 8080:127.0.0.1:8080`).
// Credentials in the URL are refused too: a URL is printed (answer commands, messages) and kept in shell history.
import { isIP } from "node:net";
import { InvalidOptionError } from "../errors.js";

export interface ServerFlags {
  server?: string;
  token?: string;
  /** --allow-http: plain http to a host that is not loopback. */
  allowHttp?: boolean;
}

export interface ServerTarget {
  /** The server's base URL: origin and path prefix, without a trailing slash. */
  base: string;
  /** Never printed, logged or passed on in argv. */
  token: string;
}

/** What the server's API accepts in Authorization: Bearer (src/server/api.ts). */
const TOKEN = /^[\x21-\x7e]{1,512}$/;

/** The server the flags and environment name, or undefined for a local command. */
export function serverTarget(flags: ServerFlags, env: NodeJS.ProcessEnv): ServerTarget | undefined {
  const fromFlag = flags.server !== undefined;
  const given = (flags.server ?? env.PERSTACK_SERVER ?? "").trim();
  const source = fromFlag ? "--server" : "PERSTACK_SERVER";
  if (given === "") {
    if (fromFlag) throw new InvalidOptionError("--server: give the server's URL, e.g. --server https://perstack.example.com");
    if (flags.token !== undefined) throw new InvalidOptionError("--token goes with --server <url> (or PERSTACK_SERVER): the token is a perstack serve tenant's");
    if (flags.allowHttp) throw new InvalidOptionError("--allow-http goes with --server <url> (or PERSTACK_SERVER)");
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new InvalidOptionError(`${source} ${JSON.stringify(given.slice(0, 200))}: not a URL; give one like https://perstack.example.com`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new InvalidOptionError(`${source}: the URL holds credentials; give the URL without them and the token in PERSTACK_TOKEN`);
  }
  const shown = `${url.protocol}//${url.host}${url.pathname === "/" ? "" : url.pathname}`;
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new InvalidOptionError(`${source} ${shown}: use an https:// (or http://) URL`);
  if (url.search !== "" || url.hash !== "") throw new InvalidOptionError(`${source} ${shown}: give the server's URL without a query or fragment`);
  if (url.protocol === "http:" && !isLoopback(url.hostname) && !flags.allowHttp) {
    throw new InvalidOptionError(
      `${source} ${shown}: plain http would send your token and workspace unencrypted; use https (perstack serve --tls-cert, or a TLS proxy), an SSH tunnel to 127.0.0.1, or --allow-http if the network to ${url.hostname} is trusted`,
    );
  }
  const token = (flags.token ?? env.PERSTACK_TOKEN ?? "").trim();
  if (token === "") throw new InvalidOptionError(`${source} ${shown}: give the tenant's API token in PERSTACK_TOKEN (perstack tenants add prints one), or with --token`);
  // The value is never echoed: a mistyped token is still a secret.
  if (!TOKEN.test(token)) throw new InvalidOptionError(`${flags.token !== undefined ? "--token" : "PERSTACK_TOKEN"}: not an API token (1 to 512 printable characters, no spaces); use what perstack tenants add printed`);
  return { base: `${url.origin}${url.pathname.replace(/\/+$/, "")}`, token };
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || /^::ffff:127\./.test(host) || /^::ffff:7f/.test(host);
  return false;
}
