// Removes containers and networks left by runs whose perstack process died (crash, kill -9). Runs of live
// processes on this host, and anything from other hosts sharing the engine, are left alone; so are the runs of dead
// processes that can still be taken over (job/orphaned-runs.ts): their job says `running`.
import type Docker from "dockerode";
import { awaitsTakeOver } from "../job/orphaned-runs.js";
import { MANAGED_LABEL, ownerIsGone } from "./labels.js";

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
  await Promise.all(
    gone(containers, (c) => c.Labels).map(async (info) => {
      await docker.getContainer(info.Id).remove({ force: true }).catch(ignoreMissing);
      removed.containers.push(info.Names[0]?.replace(/^\//, "") ?? info.Id);
    }),
  );
  await Promise.all(
    gone(volumeList.Volumes ?? [], (v) => v.Labels ?? undefined).map(async (info) => {
      await docker.getVolume(info.Name).remove().catch(ignoreMissing);
      removed.volumes.push(info.Name);
    }),
  );
  await Promise.all(
    gone(networks, (n) => n.Labels).map(async (info) => {
      await docker.getNetwork(info.Id).remove().catch(ignoreMissing);
      removed.networks.push(info.Name);
    }),
  );
  return removed;
}

export function ignoreMissing(error: unknown): void {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 404 || status === 409) return;
  throw error;
}
