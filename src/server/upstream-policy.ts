// Issue 14: tenants' configs are untrusted, so the upstreams their runs would call must be public HTTPS hosts. A
// baseUrl on a private, loopback, link-local or metadata address would make the provider gateway (which holds the
// tenant's keys and sits on a network that reaches out) call into the server's own network for the tenant. The
// operator allows exceptions with `perstack serve --allow-private-upstream host[:port]` (the tests' fake model
// servers, an in-house model server).
//
// Checked when a run is submitted (a 400 with the key path) and again just before it starts (DNS may have changed
// meanwhile); the gateway checks the addresses it connects to as well (src/gateway/address-policy.ts), which is
// what holds against a name rebound between the two.
import dns from "node:dns";
import type { LookupAddress } from "node:dns";
import { InvalidOptionError, UpstreamNotAllowedError } from "../errors.js";
import { addressKind, describeKind, ipLiteral, isAllowedUpstream, isPublicAddress, parseAllowEntry } from "../gateway/address-policy.js";
import type { SandboxPlan } from "../plan/sandbox-plan.js";

/** Every address a name resolves to (all of them: one private answer is enough to refuse). */
export type LookupAll = (host: string) => Promise<LookupAddress[]>;

export interface UpstreamCheckOptions {
  /** --allow-private-upstream entries: host or host:port, where private addresses and plain http are fine. */
  allow: readonly string[];
  /** Default: dns.promises.lookup(host, { all: true }). */
  lookup?: LookupAll;
  /** The config key a refusal names; default provider.setting.baseUrl. */
  key?: string;
}

/** An upstream a plan would contact, with the config key a refusal names. */
export interface PlannedUpstream {
  key: string;
  url: string;
}

const lookupWithDns: LookupAll = (host) => dns.promises.lookup(host, { all: true });

/** Checks --allow-private-upstream's entries at start, so a typo is the operator's error, not a silent refusal later. */
export function checkAllowEntries(entries: readonly string[]): string[] {
  for (const entry of entries) {
    if (!parseAllowEntry(entry)) {
      throw new InvalidOptionError(`--allow-private-upstream ${JSON.stringify(entry)}: give a host or host:port, e.g. models.internal:8080 or 10.0.0.5:11434`);
    }
  }
  return [...entries];
}

/**
 * The upstreams the run's sidecars would contact on the tenant's behalf: the provider gateway's (perstack.toml's
 * [provider.setting] baseUrl, the runtime's base-URL variable, or the provider's API host), and any explicit
 * upstream squid lets the agent reach on its own port other than the gateway itself (a baseUrl the gateway does not
 * serve). Skills' allowedDomains are not here: squid refuses every private destination for those itself.
 */
export function upstreamsOf(plan: SandboxPlan): PlannedUpstream[] {
  const out: PlannedUpstream[] = [];
  if (plan.gateway) out.push({ key: "provider.setting.baseUrl", url: plan.gateway.config.upstream });
  for (const upstream of plan.proxy.upstreams) {
    if (plan.gateway && upstream.host === plan.gateway.alias) continue;
    const host = upstream.host.includes(":") ? `[${upstream.host}]` : upstream.host;
    out.push({ key: "provider.setting.baseUrl", url: `${upstream.scheme}://${host}:${upstream.port}/` });
  }
  return out;
}

/** The operator's entry that would allow this URL: its host and port as written for the option. */
function allowEntryFor(url: URL): string {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return `${url.hostname}:${port}`;
}

/** Throws UpstreamNotAllowedError unless `url` is https on public addresses only, or allowed by the operator. */
export async function checkUpstream(value: string, options: UpstreamCheckOptions): Promise<void> {
  const key = options.key ?? "provider.setting.baseUrl";
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UpstreamNotAllowedError(`${key} "${value}" is not a URL; use a public HTTPS endpoint`);
  }
  if (isAllowedUpstream(url, options.allow)) return;
  const refuse = (why: string): never => {
    throw new UpstreamNotAllowedError(
      `${key} "${value}": ${why}; use a public HTTPS endpoint, or ask the operator to allow it with perstack serve --allow-private-upstream ${allowEntryFor(url)}`,
    );
  };
  const literal = ipLiteral(url.hostname);
  if (literal !== undefined && !isPublicAddress(literal)) refuse(`${literal} is ${describeKind(addressKind(literal))}`);
  if (url.protocol !== "https:") refuse(`${url.protocol.replace(/:$/, "")} is refused, only https`);
  if (literal !== undefined) return;
  let addresses: LookupAddress[];
  try {
    addresses = await (options.lookup ?? lookupWithDns)(url.hostname);
  } catch (error) {
    // Unresolvable now, it cannot be shown to be public; the run could not reach it either.
    return refuse(`${url.hostname} does not resolve (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (addresses.length === 0) refuse(`${url.hostname} does not resolve`);
  const refused = addresses.find((a) => !isPublicAddress(a.address));
  if (refused) refuse(`${url.hostname} resolves to ${refused.address}, ${describeKind(addressKind(refused.address))}`);
}

/** Checks every upstream the plan would contact (upstreamsOf); the first refused one throws. */
export async function checkUpstreams(plan: SandboxPlan, options: UpstreamCheckOptions): Promise<void> {
  for (const upstream of upstreamsOf(plan)) await checkUpstream(upstream.url, { ...options, key: upstream.key });
}
