// PURE: the address ranges runs' networks get. Docker's default pools hand out whole /16s and /20s and hold about
// 30 networks, which 15 concurrent runs (two networks each) use up. Runs instead take small subnets from one
// dedicated pool; which of them are free is decided against the engine's networks in sandbox/run-networks.ts.

/** An IPv4 range in CIDR form, as numbers. */
export interface Ipv4Range {
  /** The first address, as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

export interface SubnetPool extends Ipv4Range {
  /** As written (PERSTACK_SUBNET_POOL or the default), for messages. */
  text: string;
}

/**
 * 172.29.0.0/16: private (RFC 1918), outside 10/8 and 192.168/16, where home routers, VPNs and cloud VPCs mostly
 * live. It is inside Docker's own default pools (172.17-172.31, handed out as whole /16s in order from 172.17), but
 * Docker reaches it only after 12 networks of its own, and it skips a /16 that our subnets occupy.
 */
export const DEFAULT_SUBNET_POOL = "172.29.0.0/16";

/**
 * A run's network holds at most three addresses of its own (the internal one: the proxy, the agent and the bridge's
 * reserved gateway address; the egress one: the proxy, the provider gateway and the bridge). A /28 leaves 13 for
 * hosts: room for more sidecars without changing the pool's layout. The default pool holds 4,096 of them.
 */
export const RUN_SUBNET_PREFIX = 28;

/** Networks each run creates (internal and egress). */
export const NETWORKS_PER_RUN = 2;

/** "a.b.c.d/n" -> range; undefined for anything else (IPv6 subnets included). Host bits must be zero. */
export function parseIpv4Cidr(text: string): Ipv4Range | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text.trim());
  if (!match) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const base = octets.reduce((n, o) => n * 256 + o, 0);
  return { base, prefix };
}

function size(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** The range's network address; differs from `base` when host bits are set. */
function networkAddress(range: Ipv4Range): number {
  return range.base - (range.base % size(range.prefix));
}

export function formatIpv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

export function formatCidr(range: Ipv4Range): string {
  return `${formatIpv4(range.base)}/${range.prefix}`;
}

/**
 * PERSTACK_SUBNET_POOL's value -> pool, or a problem that says what to write instead. The pool must hold at least
 * one run's subnets, and must be an IPv4 network address (host bits zero), so that what the user wrote is what is
 * used.
 */
export function parseSubnetPool(text: string): SubnetPool | { problem: string } {
  const range = parseIpv4Cidr(text);
  if (!range) return { problem: `"${text}" is not an IPv4 range in CIDR form; write it like ${DEFAULT_SUBNET_POOL}` };
  const network = networkAddress(range);
  if (network !== range.base) {
    return { problem: `"${text}" has host bits set; did you mean ${formatCidr({ base: network, prefix: range.prefix })}?` };
  }
  if (subnetCount(range) < NETWORKS_PER_RUN) {
    return { problem: `"${text}" is too small: a run needs ${NETWORKS_PER_RUN} /${RUN_SUBNET_PREFIX} subnets, so give a /${RUN_SUBNET_PREFIX - 1} or larger` };
  }
  if (range.base >= 0xe0000000) return { problem: `"${text}" is a multicast or reserved range; choose a private range like ${DEFAULT_SUBNET_POOL}` };
  return { ...range, text: formatCidr(range) };
}

/** How many run subnets the pool holds. */
export function subnetCount(pool: Ipv4Range): number {
  return pool.prefix > RUN_SUBNET_PREFIX ? 0 : size(pool.prefix) / size(RUN_SUBNET_PREFIX);
}

/** How many runs' networks fit in the pool at once. */
export function runsThePoolHolds(pool: Ipv4Range): number {
  return Math.floor(subnetCount(pool) / NETWORKS_PER_RUN);
}

export function overlaps(a: Ipv4Range, b: Ipv4Range): boolean {
  const aStart = networkAddress(a);
  const bStart = networkAddress(b);
  return aStart < bStart + size(b.prefix) && bStart < aStart + size(a.prefix);
}

/** The pool's `index`th run subnet. */
export function subnetAt(pool: Ipv4Range, index: number): Ipv4Range {
  return { base: networkAddress(pool) + index * size(RUN_SUBNET_PREFIX), prefix: RUN_SUBNET_PREFIX };
}

/**
 * The addresses a run uses in its subnet: the bridge's gateway (reserved by Docker's IPAM even where the bridge gets
 * no address), then fixed ones for the proxy and the agent. Fixed, so the agent can be created, and started, before
 * the proxy: it is told the proxy's address in advance, and neither can take the other's from Docker's allocator.
 */
export function subnetAddresses(subnet: Ipv4Range): { gateway: string; proxy: string; agent: string } {
  return { gateway: formatIpv4(subnet.base + 1), proxy: formatIpv4(subnet.base + 2), agent: formatIpv4(subnet.base + 3) };
}

/**
 * `count` free run subnets of the pool, avoiding every range in `taken` (the engine's networks and subnets tried
 * already); fewer when the pool has fewer free ones. Concurrent runs read the same engine state at the same moment, so
 * each starts its search at a random place (`random` in [0, 1)): they rarely pick the same subnet, and when they do,
 * Docker refuses the second and it tries again.
 */
export function pickFreeSubnets(pool: Ipv4Range, taken: readonly Ipv4Range[], count: number, random: () => number): Ipv4Range[] {
  const total = subnetCount(pool);
  const inPool = taken.filter((range) => overlaps(range, pool));
  const picked: Ipv4Range[] = [];
  const isFree = (candidate: Ipv4Range) => !inPool.some((range) => overlaps(range, candidate)) && !picked.some((p) => p.base === candidate.base);
  // Random probes find a free subnet at once in a pool that is mostly free; the scan after them finds the last ones.
  for (let probe = 0; probe < 16 && picked.length < count; probe++) {
    const candidate = subnetAt(pool, Math.floor(random() * total));
    if (isFree(candidate)) picked.push(candidate);
  }
  const start = Math.floor(random() * total);
  for (let step = 0; step < total && picked.length < count; step++) {
    const candidate = subnetAt(pool, (start + step) % total);
    if (isFree(candidate)) picked.push(candidate);
  }
  return picked;
}
