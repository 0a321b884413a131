// EFFECTS: creates a run's networks, each on a small subnet of the pool (plan/subnet-pool.ts) that no network on the
// engine uses. Other perstack processes choose at the same moment from the same picture of the engine, so a subnet
// can be taken between the look and the create: Docker then refuses the create as overlapping, and the network
// tries another free subnet, a bounded number of times.
import type Docker from "dockerode";
import { SubnetPoolExhaustedError } from "../errors.js";
import type { NetworkPlan } from "../plan/sandbox-plan.js";
import { formatCidr, overlaps, parseIpv4Cidr, pickFreeSubnets, subnetAddresses, subnetCount, type Ipv4Range, type SubnetPool } from "../plan/subnet-pool.js";
import type { SandboxResources } from "./sandbox-resources.js";

export interface RunNetwork {
  plan: NetworkPlan;
  subnet: string;
  /** Fixed addresses, known before the containers start (used on the internal network). */
  proxyAddress: string;
  agentAddress: string;
  /** The bridge's gateway address (reserved on the internal network too, where the bridge has no address). */
  gateway: string;
}

/** Tries per network before giving up: each try after the first follows a create another process won. */
const MAX_TRIES = 12;

const OVERLAP = /overlaps|already in use|conflicts? with/i;

/** Creates the run's networks, each on a subnet of the pool that no network on the engine uses. */
export function createRunNetworks(...args: Parameters<typeof createEachRunNetwork>): Promise<RunNetwork[]> {
  return Promise.all(createEachRunNetwork(...args));
}

/**
 * The same, as one promise per network (in the plan's order), so that what needs only one of them (the agent needs
 * only the internal network) can start as soon as that one exists. The subnets are chosen together first.
 */
export function createEachRunNetwork(
  docker: Docker,
  networks: NetworkPlan[],
  pool: SubnetPool,
  labels: Record<string, string>,
  resources: SandboxResources,
  random: () => number = Math.random,
): Array<Promise<RunNetwork>> {
  const picked = (async () => {
    const taken = await subnetsInUse(docker);
    const chosen = pickFreeSubnets(pool, taken, networks.length, random);
    if (chosen.length < networks.length) throw exhausted(pool, taken);
    // This run's own choices count as taken for its retries, so its two networks never pick the same one.
    taken.push(...chosen);
    return { taken, chosen };
  })();
  return networks.map(async (network, index) => {
    const { taken, chosen } = await picked;
    let subnet = chosen[index]!;
    for (let attempt = 1; ; attempt++) {
      const addresses = subnetAddresses(subnet);
      try {
        const handle = await docker.createNetwork({
          Name: network.name,
          Driver: "bridge",
          Internal: network.internal,
          EnableIPv6: network.enableIPv6,
          Options: network.options,
          CheckDuplicate: true,
          IPAM: { Driver: "default", Config: [{ Subnet: formatCidr(subnet), Gateway: addresses.gateway }] },
          Labels: { ...labels, "perstack.role": `network-${network.role}` },
        });
        resources.network(network.name, handle);
        return { plan: network, subnet: formatCidr(subnet), proxyAddress: addresses.proxy, agentAddress: addresses.agent, gateway: addresses.gateway };
      } catch (error) {
        if (!isOverlap(error) || attempt >= MAX_TRIES) throw error;
        // Another network got it first: look again, since more than one may have appeared.
        taken.push(...(await subnetsInUse(docker)));
        const next = pickFreeSubnets(pool, taken, 1, random)[0];
        if (!next) throw exhausted(pool, taken);
        taken.push(next);
        subnet = next;
      }
    }
  });
}

/** The RunNetwork of a network that exists already on `subnet` (a warm shell's, as its label says); undefined if none. */
export function networkOn(subnet: string | undefined, plan: NetworkPlan): RunNetwork | undefined {
  const range = subnet ? parseIpv4Cidr(subnet) : undefined;
  if (!range) return undefined;
  const addresses = subnetAddresses(range);
  return { plan, subnet: formatCidr(range), proxyAddress: addresses.proxy, agentAddress: addresses.agent, gateway: addresses.gateway };
}

/** Every IPv4 subnet the engine's networks use, whoever made them. */
async function subnetsInUse(docker: Docker): Promise<Ipv4Range[]> {
  const networks = await docker.listNetworks();
  return networks.flatMap((network) =>
    (network.IPAM?.Config ?? []).flatMap((config) => {
      const range = config.Subnet ? parseIpv4Cidr(config.Subnet) : undefined;
      return range ? [range] : [];
    }),
  );
}

function isOverlap(error: unknown): boolean {
  const e = error as { statusCode?: number; json?: { message?: string } | null; message?: string };
  if (typeof e.statusCode !== "number" || e.statusCode === 404) return false;
  const message = e.json?.message ?? e.message ?? "";
  // A name conflict is not an address conflict: that network exists, and another subnet does not change it.
  return OVERLAP.test(message) && !/network with name/i.test(message);
}

function exhausted(pool: SubnetPool, taken: Ipv4Range[]): SubnetPoolExhaustedError {
  const inPool = taken.filter((range) => overlaps(range, pool)).length;
  return new SubnetPoolExhaustedError(
    `no free subnet for the run's networks in the pool ${pool.text} (PERSTACK_SUBNET_POOL; ${subnetCount(pool)} subnets, ${inPool} used by networks on the engine); ` +
      `remove networks you no longer need (docker network ls), or set PERSTACK_SUBNET_POOL to a larger range no other network uses`,
  );
}
