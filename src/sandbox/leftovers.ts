// Removes containers and networks left by runs whose perstack process died (crash, kill -9). Runs of live
// processes on this host, and anything from other hosts sharing the engine, are left alone.
import type Docker from "dockerode";
import { MANAGED_LABEL, ownerIsGone } from "./labels.js";

export interface RemovedLeftovers {
  containers: string[];
  volumes: string[];
  networks: string[];
}

export async function removeLeftovers(docker: Docker, filter: (labels: Record<string, string>) => boolean = ownerIsGone): Promise<RemovedLeftovers> {
  const removed: RemovedLeftovers = { containers: [], volumes: [], networks: [] };
  const containers = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const info of containers) {
    if (!filter(info.Labels)) continue;
    await docker.getContainer(info.Id).remove({ force: true }).catch(ignoreMissing);
    removed.containers.push(info.Names[0]?.replace(/^\//, "") ?? info.Id);
  }
  const volumes = (await docker.listVolumes({ filters: { label: [`${MANAGED_LABEL}=true`] } })).Volumes ?? [];
  for (const info of volumes) {
    if (!filter(info.Labels ?? {})) continue;
    await docker.getVolume(info.Name).remove().catch(ignoreMissing);
    removed.volumes.push(info.Name);
  }
  const networks = await docker.listNetworks({ filters: { label: [`${MANAGED_LABEL}=true`] } });
  for (const info of networks) {
    if (!filter(info.Labels ?? {})) continue;
    await docker.getNetwork(info.Id).remove().catch(ignoreMissing);
    removed.networks.push(info.Name);
  }
  return removed;
}

export function ignoreMissing(error: unknown): void {
  const status = (error as { statusCode?: number }).statusCode;
  if (status === 404 || status === 409) return;
  throw error;
}
