// EFFECTS: warm shells (plan/warm-shell.ts) on the engine. A shell is made ahead of a run (by the teardown process of
// the run before, refillWarmShells) and claimed by one run (claimWarmShell), which then only hands its sidecars their
// configuration and starts its agent in the held network namespace (run-sandbox.ts), instead of creating two
// networks, starting two more containers and setting up its agent's network.
//
// Claiming is atomic across processes: the claim is the creation of a never-started container with the shell's
// claim name (name-claim.ts), which the engine refuses to a second run. The claimed sidecars are then renamed, so that no later
// look takes them for a free shell even if the claim goes first; the claim container carries the run's labels and
// owner, so that a take-over (job/recover-run.ts) and the leftover sweep (leftovers.ts) find the shell through it.
// A free shell has no owner labels: it belongs to no process and no sweep removes it.
import type Docker from "dockerode";
import { newId } from "../model/ids.js";
import { AGENT_NETWORK_ROLE, SHELL_CLAIM_ROLE, SHELL_LABEL, SHELL_SIGNATURE_LABEL, SHELL_SUBNETS_LABEL, shellIdOfProxyName, shellNames, type ShellSpec } from "../plan/warm-shell.js";
import { parseIpv4Cidr, parseSubnetPool } from "../plan/subnet-pool.js";
import type { NetworkPlan } from "../plan/sandbox-plan.js";
import { MANAGED_LABEL, ownerIsGone, ownerLabels } from "./labels.js";
import { ignoreMissing } from "./ignore-missing.js";
import { inTurn } from "./in-turn.js";
import { claimName } from "./name-claim.js";
import { createEachRunNetwork, networkOn, type RunNetwork } from "./run-networks.js";
import { shuffled } from "./run-slots.js";
import { SandboxResources } from "./sandbox-resources.js";
import { handOffRefill } from "./teardown-handoff.js";
import { agentNetworkHolderOptions, connectProxyToInternal, gatewayCreateOptions, proxyCreateOptions } from "./sidecar-containers.js";

export interface ClaimedShell {
  id: string;
  proxy: Docker.Container;
  gateway: Docker.Container;
  /** The container whose network namespace the agent joins (sidecar-containers.ts agentNetworkHolderOptions). */
  agentNetwork: Docker.Container;
  internal: RunNetwork;
}

/** A shell found on the engine: its sidecars, and its networks' subnets as its proxy's label gives them. */
interface FreeShell {
  id: string;
  proxyId: string;
  gatewayId: string;
  agentNetworkId: string;
  subnets: Partial<Record<NetworkPlan["role"], string>>;
}

/**
 * Claims a free shell of `spec` for the run whose labels are `labels` (the run's and its owner's), registering its
 * parts with the run's resources so they are removed with the rest of its sandbox. The sidecars are renamed to
 * `names`. Undefined when there is no free shell, or none could be had (the run then builds its own).
 */
export async function claimWarmShell(
  docker: Docker,
  spec: ShellSpec,
  labels: Record<string, string>,
  names: { proxy: string; gateway: string },
  resources: SandboxResources,
  random: () => number = Math.random,
): Promise<ClaimedShell | undefined> {
  const free = shuffled(await freeShells(docker, spec), random);
  for (const shell of free) {
    const shellNamesOf = shellNames(shell.id);
    let claim: Docker.Container | undefined;
    try {
      claim = await claimName(docker, shellNamesOf.claim, spec.proxy.image, { ...labels, [MANAGED_LABEL]: "true", "perstack.role": SHELL_CLAIM_ROLE, [SHELL_LABEL]: shell.id });
    } catch {
      return undefined;
    }
    // Another run claimed it between the look and the claim.
    if (!claim) continue;
    // From here the shell is this run's: whatever happens, it is removed with the run's sandbox (its claim last).
    const proxy = docker.getContainer(shell.proxyId);
    const gateway = docker.getContainer(shell.gatewayId);
    const agentNetwork = docker.getContainer(shell.agentNetworkId);
    const internalPlan = spec.networks.find((n) => n.role === "internal");
    const internal = internalPlan && networkOn(shell.subnets.internal, { ...internalPlan, name: shellNamesOf.network("internal") });
    const renamed = await Promise.all([proxy.rename({ name: names.proxy }), gateway.rename({ name: names.gateway })]).then(
      () => true,
      () => false,
    );
    const register = (to: SandboxResources) => {
      to.claim(shellNamesOf.claim, claim);
      to.container(renamed ? names.proxy : shellNamesOf.proxy, proxy);
      to.container(renamed ? names.gateway : shellNamesOf.gateway, gateway);
      to.container(shellNamesOf.agentNetwork, agentNetwork);
      for (const role of ["internal", "egress"] as const) to.network(shellNamesOf.network(role), docker.getNetwork(shellNamesOf.network(role)));
    };
    if (!renamed || !internal) {
      // Half gone already (removed by someone else, or the engine restarted): given up, and removed now, so that the
      // run's own sidecars can take the names.
      const given = new SandboxResources(docker);
      register(given);
      await given.removeAll();
      continue;
    }
    register(resources);
    return { id: shell.id, proxy, gateway, agentNetwork, internal };
  }
  return undefined;
}

/**
 * After a sandbox its process removed itself (not handed to a teardown process): when one look says the pool of its
 * spec is short or over, a detached refill brings it to its size (teardown-handoff.ts handOffRefill), so that no
 * command waits for that. The common case, the pool as it should be, starts nothing.
 */
export async function refillInBackground(docker: Docker, resources: SandboxResources): Promise<void> {
  const refill = resources.refill;
  if (!refill || resources.remaining().length > 0) return;
  const short = await freeShells(docker, refill.spec).then(
    (free) => free.length !== refill.size,
    () => false,
  );
  if (short) handOffRefill(refill);
}

/** Free shells of `spec`: proxy, gateway and agent network holder running under their shell names, and no claim. */
async function freeShells(docker: Docker, spec: ShellSpec): Promise<FreeShell[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${SHELL_SIGNATURE_LABEL}=${spec.signature}`] } });
  return freeShellsAmong(containers);
}

function freeShellsAmong(containers: Docker.ContainerInfo[]): FreeShell[] {
  const shells = new Map<string, Partial<FreeShell> & { claimed?: boolean }>();
  const of = (id: string) => {
    let shell = shells.get(id);
    if (!shell) {
      shell = { id };
      shells.set(id, shell);
    }
    return shell;
  };
  for (const info of containers) {
    const id = info.Labels[SHELL_LABEL];
    if (!id) continue;
    const role = info.Labels["perstack.role"];
    const name = (info.Names[0] ?? "").replace(/^\//, "");
    const shell = of(id);
    if (role === SHELL_CLAIM_ROLE) shell.claimed = true;
    else if (role === "proxy" && info.State === "running" && shellIdOfProxyName(name) === id) {
      shell.proxyId = info.Id;
      shell.subnets = parseSubnets(info.Labels[SHELL_SUBNETS_LABEL]);
    } else if (role === "gateway" && info.State === "running" && name === shellNames(id).gateway) shell.gatewayId = info.Id;
    else if (role === AGENT_NETWORK_ROLE && info.State === "running" && name === shellNames(id).agentNetwork) shell.agentNetworkId = info.Id;
  }
  return [...shells.values()].filter(
    (s): s is FreeShell => !s.claimed && s.proxyId !== undefined && s.gatewayId !== undefined && s.agentNetworkId !== undefined && s.subnets !== undefined,
  );
}

/** "internal=10.1.2.0/28,egress=10.1.2.16/28" as the proxy's label says it. */
function parseSubnets(text: string | undefined): FreeShell["subnets"] {
  const subnets: FreeShell["subnets"] = {};
  for (const part of (text ?? "").split(",")) {
    const [role, cidr] = part.split("=");
    if ((role === "internal" || role === "egress") && cidr && parseIpv4Cidr(cidr)) subnets[role] = cidr;
  }
  return subnets;
}

/**
 * Makes one shell of `spec`: its networks, the proxy on both and the gateway on the egress one, started and waiting for
 * a handover, and the holder of the agent's network namespace on the internal one. Everything made is removed again
 * when a step fails. Returns the shell's id.
 */
export async function createWarmShell(docker: Docker, spec: ShellSpec): Promise<string> {
  const id = newId();
  const names = shellNames(id);
  const resources = new SandboxResources(docker);
  const labels = { [MANAGED_LABEL]: "true", [SHELL_LABEL]: id, [SHELL_SIGNATURE_LABEL]: spec.signature };
  const pool = parseSubnetPool(spec.subnetPool);
  if ("problem" in pool) throw new Error(`warm shell: ${pool.problem}`);
  try {
    const networks = await Promise.all(
      createEachRunNetwork(
        docker,
        spec.networks.map((network) => ({ ...network, name: names.network(network.role) })),
        pool,
        labels,
        resources,
      ),
    );
    const egress = networks.find((n) => n.plan.role === "egress")!;
    const internal = networks.find((n) => n.plan.role === "internal")!;
    const subnets = networks.map((n) => `${n.plan.role}=${n.subnet}`).join(",");
    const [proxy, gateway, agentNetwork] = await Promise.all([
      docker.createContainer(
        proxyCreateOptions({ name: names.proxy, image: spec.proxy.image, labels: { ...labels, [SHELL_SUBNETS_LABEL]: subnets }, egress: egress.plan.name, extraHosts: spec.proxy.extraHosts }),
      ),
      docker.createContainer(gatewayCreateOptions({ name: names.gateway, image: spec.gateway.image, labels, egress: egress.plan.name, extraHosts: spec.gateway.extraHosts, alias: spec.gateway.alias })),
      docker.createContainer(
        agentNetworkHolderOptions({
          name: names.agentNetwork,
          image: spec.proxy.image,
          labels,
          internal: internal.plan.name,
          agentAddress: internal.agentAddress,
          proxyHost: `${spec.proxy.alias}:${internal.proxyAddress}`,
          dns: spec.agentNetwork.dns,
          sysctls: spec.agentNetwork.sysctls,
        }),
      ),
    ]);
    resources.container(names.proxy, proxy);
    resources.container(names.gateway, gateway);
    resources.container(names.agentNetwork, agentNetwork);
    await connectProxyToInternal(docker, proxy, internal.plan.name, spec.proxy.alias, internal.proxyAddress);
    await Promise.all([proxy.start(), gateway.start(), agentNetwork.start()]);
    return id;
  } catch (error) {
    await resources.removeAll().catch(() => undefined);
    throw error;
  }
}

/** The role of a spec's fill lock (refillWarmShells). */
const SHELL_FILL_ROLE = "shell-fill";

/** How long an unclaimed shell of another spec may stay: perstack was upgraded, or a project changed its settings. */
const OTHER_SPEC_MAX_AGE_S = 60 * 60;

/**
 * Keeps `size` free shells of `spec` on the engine: removes shells that cannot be claimed any more (a sidecar
 * stopped, as after an engine restart), free shells of other specs older than an hour, and free shells of this spec
 * past `size` (0: PERSTACK_WARM_POOL=0 removes them), then makes what is missing. Best effort: a failure leaves the
 * pool short, and the next run builds its own sandbox.
 */
export async function refillWarmShells(docker: Docker, spec: ShellSpec, size: number): Promise<{ created: number; removed: number }> {
  const look = () => docker.listContainers({ all: true, filters: { label: [SHELL_LABEL] } });
  // Most of the time the pool is as it should be: one look, and nothing more.
  if (refillPlan(await look(), spec, size).idle) return { created: 0, removed: 0 };
  // One refill of a spec at a time: runs that end together (a burst of runs, a comparison) would each make a shell
  // for the same empty place. The others leave it to the one that holds the lock.
  const lock = await takeFillLock(docker, spec);
  if (!lock) return { created: 0, removed: 0 };
  try {
    const plan = refillPlan(await look(), spec, size);
    for (const id of plan.doomed) await removeShell(docker, id);
    let created = 0;
    for (; created < plan.missing; created++) {
      const id = await createWarmShell(docker, spec);
      // A lock left by a process that died is swept while a refill may still hold it: past the pool's size, every
      // process keeps the same shells (the oldest: ids sort by time) and removes its own if it is not one of them.
      const now = freeShellsAmong(await docker.listContainers({ all: true, filters: { label: [`${SHELL_SIGNATURE_LABEL}=${spec.signature}`] } }))
        .map((shell) => shell.id)
        .sort();
      if (now.length > size && !now.slice(0, size).includes(id)) {
        await removeShell(docker, id);
        break;
      }
    }
    return { created, removed: plan.doomed.size };
  } finally {
    await lock.remove({ force: true }).catch(ignoreMissing);
  }
}

/**
 * What a refill of `spec` to `size` does, from one look at every shell's containers: the shells to remove (those that
 * can never be claimed, free ones of other specs past their age, free ones of this spec past the size) and how many
 * to make.
 */
function refillPlan(all: Docker.ContainerInfo[], spec: ShellSpec, size: number): { doomed: Set<string>; missing: number; idle: boolean } {
  const claimed = new Set(all.filter((c) => c.Labels["perstack.role"] === SHELL_CLAIM_ROLE).map((c) => c.Labels[SHELL_LABEL]!));
  const free = new Set(freeShellsAmong(all).map((s) => s.id));
  const nowS = Date.now() / 1000;
  const doomed = new Set<string>();
  for (const info of all) {
    const id = info.Labels[SHELL_LABEL]!;
    if (claimed.has(id) || doomed.has(id)) continue;
    if (!free.has(id)) {
      // Unclaimed yet not whole and running: it can never be claimed. (A shell being made right now by another
      // process looks the same for a moment: it is only removed once it is a minute old.)
      if (nowS - info.Created > 60) doomed.add(id);
    } else if (info.Labels[SHELL_SIGNATURE_LABEL] !== spec.signature && nowS - info.Created > OTHER_SPEC_MAX_AGE_S) doomed.add(id);
  }
  const mine = [...free].filter((id) => !doomed.has(id) && all.some((c) => c.Labels[SHELL_LABEL] === id && c.Labels[SHELL_SIGNATURE_LABEL] === spec.signature)).sort();
  for (const id of mine.slice(size)) doomed.add(id);
  const missing = Math.max(0, size - mine.length);
  return { doomed, missing, idle: doomed.size === 0 && missing === 0 };
}

/**
 * The fill lock of `spec`, named for the spec, with this process as its owner (name-claim.ts). Undefined when another
 * live process holds it.
 */
export async function takeFillLock(docker: Docker, spec: ShellSpec): Promise<Docker.Container | undefined> {
  const name = `perstack-shell-fill-${spec.signature}`;
  const take = () => claimName(docker, name, spec.proxy.image, { [MANAGED_LABEL]: "true", "perstack.role": SHELL_FILL_ROLE, ...ownerLabels() });
  const lock = await take();
  if (lock) return lock;
  // Held by a process of this host that died (a killed teardown process): the lock is taken over now rather than at
  // the next command's sweep, which would leave the pool short until then. Removed by its id: if another process
  // took a fresh lock meanwhile, that one stays.
  const held = await docker.getContainer(name).inspect().catch(() => undefined);
  if (!held || !ownerIsGone(held.Config.Labels)) return undefined;
  await docker.getContainer(held.Id).remove({ force: true }).catch(() => undefined);
  return take();
}

/**
 * Removes the free shells any of whose containers run one of `imageIds` (an image about to be pruned): a free shell
 * is a cache of those images, and would keep them in use. Claimed shells belong to a run and stay. Their ids.
 */
export async function removeFreeShellsUsing(docker: Docker, imageIds: ReadonlySet<string>): Promise<string[]> {
  const all = await docker.listContainers({ all: true, filters: { label: [SHELL_LABEL] } });
  const free = new Set(freeShellsAmong(all).map((shell) => shell.id));
  const doomed = [...new Set(all.filter((c) => imageIds.has(c.ImageID) && free.has(c.Labels[SHELL_LABEL]!)).map((c) => c.Labels[SHELL_LABEL]!))];
  for (const id of doomed) await removeShell(docker, id);
  return doomed;
}

/** Removes every part of warm shell `id`: its sidecars, then its networks, then its claim if it has one. */
export async function removeShell(docker: Docker, id: string): Promise<{ containers: string[]; networks: string[] }> {
  const filters = { label: [`${SHELL_LABEL}=${id}`] };
  const nameOf = (info: Docker.ContainerInfo) => info.Names[0]?.replace(/^\//, "") ?? info.Id;
  const containers = await docker.listContainers({ all: true, filters });
  const claims = containers.filter((c) => c.Labels["perstack.role"] === SHELL_CLAIM_ROLE);
  const parts = containers.filter((c) => !claims.includes(c));
  // In turn: they share the shell's networks (in-turn.ts).
  await inTurn(parts, (c) => docker.getContainer(c.Id).remove({ force: true }).catch(ignoreMissing));
  const networks = await docker.listNetworks({ filters });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(ignoreMissing)));
  await Promise.all(claims.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(ignoreMissing)));
  return { containers: [...parts, ...claims].map(nameOf), networks: networks.map((n) => n.Name) };
}
