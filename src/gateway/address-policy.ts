// Which addresses a tenant's upstream may be on (issue 14: tenants' configs are untrusted). Shared by the server,
// which checks a submission's upstreams before it queues the run, and the gateway, which checks again when it
// connects: a name that answered with a public address at submission may answer with a private one later (DNS
// rebinding), and only the gateway sees the address it really connects to. Pure, apart from the DNS lookup the
// gateway's connect-time filter makes.
//
// The ranges are kept in Node's net.BlockList rather than in bit arithmetic of our own. A BlockList checks an
// IPv4-mapped IPv6 address (::ffff:10.0.0.1, ::ffff:a00:1) against its IPv4 rules, so the mapped forms need no
// rules of their own (test/unit/gateway/address-policy.test.ts holds it to that).
import dns from "node:dns";
import type { LookupAddress, LookupOptions } from "node:dns";
import { BlockList, isIP } from "node:net";
import type { LookupFunction } from "node:net";

/** What an address is, for refusals that say why; "public" is the only kind an untrusted upstream may be on. */
export type AddressKind =
  | "public"
  | "metadata"
  | "loopback"
  | "private"
  | "link-local"
  | "shared (CGNAT)"
  | "unspecified"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "documentation"
  | "translation";

type Rule = readonly [address: string, prefix: number];

/**
 * Checked in this order, so that an address in two ranges is named by the more telling one (169.254.169.254 is
 * "metadata", not "link-local"). The same ranges as squid's private_dst (squid/squid.conf.hbs), which refuses them
 * to the agent's allowlisted names.
 */
const RANGES: ReadonlyArray<readonly [Exclude<AddressKind, "public">, readonly Rule[]]> = [
  // Cloud instance metadata and platform endpoints, which hand out credentials: AWS, GCP, Azure and Oracle share
  // 169.254.169.254; AWS's IPv6 endpoint; Alibaba's; Azure's WireServer (a public-looking address only the VM's host
  // answers). Most sit inside ranges below too; they are listed on their own so the refusal names them.
  ["metadata", [["169.254.169.254", 32], ["fd00:ec2::254", 128], ["100.100.100.200", 32], ["168.63.129.16", 32]]],
  ["unspecified", [["0.0.0.0", 32], ["::", 128]]],
  ["loopback", [["127.0.0.0", 8], ["::1", 128]]],
  ["private", [["10.0.0.0", 8], ["172.16.0.0", 12], ["192.168.0.0", 16], ["fc00::", 7], ["fec0::", 10]]],
  ["link-local", [["169.254.0.0", 16], ["fe80::", 10]]],
  ["shared (CGNAT)", [["100.64.0.0", 10]]],
  ["multicast", [["224.0.0.0", 4], ["ff00::", 8]]],
  ["broadcast", [["255.255.255.255", 32]]],
  // "This network" (0/8 reaches the local host on Linux), IETF protocol assignments, the deprecated 6to4 relay
  // anycast, class E, the discard prefix, and ::/96 (the deprecated IPv4-compatible ::a.b.c.d form).
  ["reserved", [["0.0.0.0", 8], ["192.0.0.0", 24], ["192.88.99.0", 24], ["240.0.0.0", 4], ["100::", 64], ["::", 96]]],
  // Documentation (TEST-NET-1..3, 2001:db8::/32, 3fff::/20) and benchmarking (198.18/15): never a real upstream.
  ["documentation", [["192.0.2.0", 24], ["198.51.100.0", 24], ["203.0.113.0", 24], ["198.18.0.0", 15], ["2001:db8::", 32], ["3fff::", 20]]],
  // Prefixes that embed an IPv4 address a translator would forward to, possibly a private one: NAT64, 6to4, Teredo.
  ["translation", [["64:ff9b::", 96], ["64:ff9b:1::", 48], ["2002::", 16], ["2001::", 32]]],
];

const LISTS: ReadonlyArray<readonly [Exclude<AddressKind, "public">, BlockList]> = RANGES.map(([kind, rules]) => {
  const list = new BlockList();
  for (const [address, prefix] of rules) list.addSubnet(address, prefix, isIP(address) === 6 ? "ipv6" : "ipv4");
  return [kind, list] as const;
});

/** An IP literal without URL brackets, or undefined for a host name. */
export function ipLiteral(host: string): string | undefined {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return isIP(bare) === 0 ? undefined : bare;
}

/** What kind of address `ip` is (IPv4, or IPv6 in any notation, IPv4-mapped included). Throws on a non-address. */
export function addressKind(ip: string): AddressKind {
  const version = isIP(ip);
  if (version === 0) throw new TypeError(`"${ip}" is not an IP address`);
  const family = version === 6 ? "ipv6" : "ipv4";
  for (const [kind, list] of LISTS) {
    if (list.check(ip, family)) return kind;
  }
  return "public";
}

export function isPublicAddress(ip: string): boolean {
  return addressKind(ip) === "public";
}

/** "a loopback address", "an unspecified address". */
export function describeKind(kind: AddressKind): string {
  const name = kind === "metadata" ? "cloud metadata" : kind;
  return `${/^[aeiou]/.test(name) ? "an" : "a"} ${name} address`;
}

/** One `--allow-private-upstream` entry: a host (any port) or host:port. Hosts are lowercase; IPv6 without brackets. */
export interface AllowEntry {
  host: string;
  port?: number;
}

/**
 * Reads `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; undefined when it is none of those. Hosts
 * go through the URL parser, as the upstream's do, so both compare in the same form (127.1 is 127.0.0.1, case).
 */
export function parseAllowEntry(entry: string): AllowEntry | undefined {
  const text = entry.trim();
  if (text === "" || /[/?#@\s]/.test(text)) return undefined;
  const bareV6 = isIP(text) === 6;
  let url: URL;
  try {
    url = new URL(`http://${bareV6 ? `[${text}]` : text}`);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (host === "") return undefined;
  // The URL parser drops :80 for http; an entry that said it means that port.
  const written = /:(\d+)$/.exec(bareV6 ? "" : text)?.[1];
  const port = written !== undefined ? Number(written) : undefined;
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined;
  return { host, ...(port !== undefined ? { port } : {}) };
}

/** Whether the URL's host and port (its scheme's default when it has none) is one the operator allowed. */
export function isAllowedUpstream(url: URL, allow: readonly string[]): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "").toLowerCase();
  const port = url.port ? Number(url.port) : url.protocol === "https:" ? 443 : 80;
  return allow.some((text) => {
    const entry = parseAllowEntry(text);
    return entry !== undefined && entry.host === host && (entry.port === undefined || entry.port === port);
  });
}

/** The error a refused connection fails with; its code shows in the gateway's 502 and the run's records. */
export class PrivateUpstreamError extends Error {
  readonly code = "EPRIVATEUPSTREAM";
}

/** Resolves a name to every address it has (dns.lookup with all: true); injectable for tests. */
export type ResolveAll = (hostname: string, options: LookupOptions, callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

const resolveWithDns: ResolveAll = (hostname, options, callback) => dns.lookup(hostname, { ...options, all: true }, callback);

/**
 * A `lookup` for http(s).Agent that connects only to public addresses: a name with any non-public answer fails
 * with PrivateUpstreamError (as a submission with one is refused), so a rebound name never reaches the server's
 * network. IP literals never come here (Node connects to them without a lookup): the config check refuses them.
 */
export function publicOnlyLookup(resolve: ResolveAll = resolveWithDns): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, options, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const refused = addresses.find((a) => !isPublicAddress(a.address));
      if (refused || addresses.length === 0) {
        const why = refused ? `${refused.address}, ${describeKind(addressKind(refused.address))}` : "no address";
        return callback(new PrivateUpstreamError(`${hostname} resolves to ${why}; the gateway connects only to public addresses`), "", 0);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}
