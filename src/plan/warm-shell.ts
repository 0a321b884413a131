// PURE: a warm shell, and which runs can use one. A shell is everything of a run's sandbox that does not depend on
// the run: its two networks, its proxy and gateway containers started and waiting for their run's configuration on
// stdin (gateway/handover.ts, squid/entrypoint.sh), and the agent's network namespace, held by a container that does
// nothing else, at the agent's address on the internal network, which the run's agent container joins (so that its
// start sets up no network at all). A run that finds one on the engine claims it instead of
// creating its own (sandbox/warm-shells.ts), which takes the networks' and the sidecars' start-up off its way; the
// shell is used by that run only and removed with its sandbox. PERSTACK_WARM_POOL says how many to keep ready.
//
// A shell fits a run when everything fixed at its creation is what the run would have created: the images, the
// sidecars' host entries and aliases, the networks' options, the subnet pool. Its spec (ShellSpec) is exactly that,
// and its signature, a hash of it, is a label on every part of the shell.
import { createHash } from "node:crypto";
import type { NetworkPlan, SandboxPlan } from "./sandbox-plan.js";
import type { SubnetPool } from "./subnet-pool.js";

/** Changes whenever the way a shell is built changes, so that shells of an older perstack are never claimed. */
const SHELL_FORMAT = 1;

export const SHELL_LABEL = "perstack.shell";
export const SHELL_SIGNATURE_LABEL = "perstack.shell-signature";
/** The subnets of a shell's networks, on its proxy: a claimer knows the addresses without inspecting the networks. */
export const SHELL_SUBNETS_LABEL = "perstack.shell-subnets";
/** The role of the container whose name claims a shell for one run (see claimMarkerName). */
export const SHELL_CLAIM_ROLE = "shell-claim";
/** The role of the container that holds a shell's agent network namespace. */
export const AGENT_NETWORK_ROLE = "agent-network";

export interface ShellSpec {
  signature: string;
  proxy: { image: string; alias: string; extraHosts: string[] };
  gateway: { image: string; alias: string; extraHosts: string[] };
  /** The agent's network namespace: its resolver and its network sysctls (AgentPlan's dns and sysctls). */
  agentNetwork: { dns: string[]; sysctls: Record<string, string> };
  networks: Array<Pick<NetworkPlan, "role" | "internal" | "enableIPv6" | "options">>;
  subnetPool: string;
}

/** The spec of the shells a run can use; undefined when the run has no gateway (it has nothing to hand one over). */
export function shellSpecOf(plan: SandboxPlan, pool: SubnetPool): ShellSpec | undefined {
  if (!plan.gateway) return undefined;
  return signed({
    proxy: { image: plan.proxy.image, alias: plan.proxy.alias, extraHosts: [...plan.proxy.extraHosts] },
    gateway: { image: plan.gateway.image, alias: plan.gateway.alias, extraHosts: [...plan.gateway.extraHosts] },
    agentNetwork: { dns: [...plan.agent.dns], sysctls: { ...plan.agent.sysctls } },
    networks: plan.networks.map(({ role, internal, enableIPv6, options }) => ({ role, internal, enableIPv6, options: { ...options } })),
    subnetPool: pool.text,
  });
}

function signed(spec: Omit<ShellSpec, "signature">): ShellSpec {
  const signature = createHash("sha256").update(JSON.stringify({ format: SHELL_FORMAT, ...spec })).digest("hex").slice(0, 16);
  return { signature, ...spec };
}

const strings = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === "string");
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * A spec as another process passed it (the teardown process reads one from its stdin): its shape checked, and its
 * signature recomputed from its content, so a shell is only ever made under the signature of what it is.
 */
export function parseShellSpec(value: unknown): ShellSpec | undefined {
  if (!isRecord(value) || !isRecord(value.proxy) || !isRecord(value.gateway) || !isRecord(value.agentNetwork) || !Array.isArray(value.networks) || typeof value.subnetPool !== "string") return undefined;
  const sidecar = (side: Record<string, unknown>) =>
    typeof side.image === "string" && typeof side.alias === "string" && strings(side.extraHosts) ? { image: side.image, alias: side.alias, extraHosts: side.extraHosts } : undefined;
  const proxy = sidecar(value.proxy);
  const gateway = sidecar(value.gateway);
  const networks = value.networks.map((n: unknown) =>
    isRecord(n) && (n.role === "internal" || n.role === "egress") && typeof n.internal === "boolean" && n.enableIPv6 === false && isRecord(n.options) && Object.values(n.options).every((v) => typeof v === "string")
      ? { role: n.role, internal: n.internal, enableIPv6: false as const, options: n.options as Record<string, string> }
      : undefined,
  );
  const { dns, sysctls } = value.agentNetwork;
  if (!strings(dns) || !isRecord(sysctls) || !Object.values(sysctls).every((v) => typeof v === "string")) return undefined;
  if (!proxy || !gateway || networks.length !== 2 || networks.some((n) => n === undefined)) return undefined;
  const agentNetwork = { dns, sysctls: sysctls as Record<string, string> };
  const spec = signed({ proxy, gateway, agentNetwork, networks: networks as ShellSpec["networks"], subnetPool: value.subnetPool });
  return spec.signature === value.signature ? spec : undefined;
}

/** The names of one shell's parts. Docker names: the id is a safe id (model/ids.ts). */
export function shellNames(shellId: string) {
  const prefix = `perstack-shell-${shellId}`;
  return {
    network: (role: NetworkPlan["role"]) => `${prefix}-${role}`,
    proxy: `${prefix}-proxy`,
    gateway: `${prefix}-gateway`,
    /** Holds the agent's network namespace (see above). */
    agentNetwork: `${prefix}-agent-net`,
    /**
     * A container that is never started: creating it is the claim (the engine's names are unique, so of two runs
     * that want the same shell one gets a conflict). It carries the claiming run's labels and owner, so sweeps and
     * take-overs find the shell through it, and it is removed last.
     */
    claim: `${prefix}-claim`,
  };
}

/** The shell id in a shell part's name, if it is one (a claimed shell's sidecars are renamed to their run's names). */
export function shellIdOfProxyName(name: string): string | undefined {
  return /^\/?perstack-shell-([A-Za-z0-9][A-Za-z0-9_-]{0,127})-proxy$/.exec(name)?.[1];
}

/** The warm pool's size from PERSTACK_WARM_POOL: how many shells to keep ready per spec. */
export const WARM_POOL_ENV = "PERSTACK_WARM_POOL";
export const MAX_WARM_POOL = 8;
/** One: the next run on the engine starts warm, at the cost of three idle containers and two networks. */
export const DEFAULT_WARM_POOL = 1;
