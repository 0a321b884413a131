// Removes containers and networks left by runs whose perstack process died (crash, kill -9). Runs of live
// processes on this host, and anything from other hosts sharing the engine, are left alone; so are the runs of dead
// processes that can still be taken over (job/orphaned-runs.ts): their job says `running`.
//
// A warm shell a run claimed (warm-shells.ts) goes with the run's claim container, which carries the run's labels:
// when the claim is a leftover, the whole shell is. A used shell whose claim is gone (its removal stopped halfway)
// goes too. A free shell belongs to no process and stays.
import type Docker from "dockerode";
import { awaitsTakeOver } from "../job/orphaned-runs.js";
import { SHELL_CLAIM_ROLE, SHELL_LABEL, shellIdOfProxyName } from "../plan/warm-shell.js";
import { inTurn } from "./in-turn.js";
import { ignoreMissing } from "./ignore-missing.js";
import { MANAGED_LABEL, ownerIsGone } from "./labels.js";
import { removeShell } from "./warm-shells.js";

export interface RemovedLeftovers {
  containers: string[];
  volumes: string[];
  networks: string[];
}

/** Labels of what a dead process left and nobody will take over. */
export function isLeftover(labels: Record<string, string>): boolean {
  return ownerIsGone(labels) && !awaitsTakeOver(labels);
}

export async function removeLeftovers(docker: Docker, filter: (labels: Record<string, string>) => boolean = isLeftover): Promise<RemovedLeftovers> {
  const removed: RemovedLeftovers = { containers: [], volumes: [], networks: [] };
  const managed = { filters: { label: [`${MANAGED_LABEL}=true`] } };
  // One look at everything first (every run starts with this); then containers, which hold the rest, go first.
  const [containers, volumeList, networks] = await Promise.all([docker.listContainers({ all: true, ...managed }), docker.listVolumes(managed), docker.listNetworks(managed)]);
  const gone = <T>(items: T[], labelsOf: (item: T) => Record<string, string> | undefined) => items.filter((item) => filter(labelsOf(item) ?? {}));
  const shells = [...new Set([...gone(containers, (c) => c.Labels).flatMap((c) => (c.Labels["perstack.role"] === SHELL_CLAIM_ROLE ? [c.Labels[SHELL_LABEL]!] : [])), ...usedWithoutClaim(containers)])];
  // In turn: a run's containers share its networks (in-turn.ts).
  await inTurn(
    gone(containers, (c) => c.Labels).filter((info) => !shells.includes(info.Labels[SHELL_LABEL] ?? "")),
    async (info) => {
      await docker.getContainer(info.Id).remove({ force: true }).catch(ignoreMissing);
      removed.containers.push(info.Names[0]?.replace(/^\//, "") ?? info.Id);
    },
  );
  // After the runs' own containers: a run's agent sits on its shell's internal network.
  await inTurn(shells, async (id) => {
    const parts = await removeShell(docker, id);
    removed.containers.push(...parts.containers);
    removed.networks.push(...parts.networks);
  });
  await Promise.all(
    gone(volumeList.Volumes ?? [], (v) => v.Labels ?? undefined).map(async (info) => {
      await docker.getVolume(info.Name).remove().catch(ignoreMissing);
      removed.volumes.push(info.Name);
    }),
  );
  await Promise.all(
    gone(networks, (n) => n.Labels)
      .filter((info) => !shells.includes(info.Labels?.[SHELL_LABEL] ?? ""))
      .map(async (info) => {
        await docker.getNetwork(info.Id).remove().catch(ignoreMissing);
        removed.networks.push(info.Name);
      }),
  );
  return removed;
}

/** Shells whose proxy was renamed (claimed) and that no claim container holds any more. */
function usedWithoutClaim(containers: Docker.ContainerInfo[]): string[] {
  const claimed = new Set(containers.filter((c) => c.Labels["perstack.role"] === SHELL_CLAIM_ROLE).map((c) => c.Labels[SHELL_LABEL]));
  return containers.flatMap((c) => {
    const id = c.Labels[SHELL_LABEL];
    if (!id || claimed.has(id) || c.Labels["perstack.role"] !== "proxy") return [];
    return shellIdOfProxyName((c.Names[0] ?? "").replace(/^\//, "")) === id ? [] : [id];
  });
}
