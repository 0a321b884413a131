// Content-hash tags mean every change of inputs leaves the previous agent/proxy image behind. Pruning keeps the
// newest image of each repository (the one the current inputs most likely produced) unless told to remove all.
// Base images (perstack-local/*) are never touched here; an image a container still uses is skipped, except by a free
// warm shell (warm-shells.ts), a cache of those images, which is removed first.
import type Docker from "dockerode";
import { removeFreeShellsUsing } from "./warm-shells.js";

const PRUNABLE_ROLES = new Set(["agent-image", "proxy-image", "gateway-image"]);

export interface PruneResult {
  removed: string[];
  kept: string[];
  skipped: string[];
}

export interface PruneOptions {
  all: boolean;
  /** Only images that also carry this label (`key` or `key=value`): a prune scoped to some images of the engine. */
  label?: string;
}

export async function pruneImages(docker: Docker, options: PruneOptions): Promise<PruneResult> {
  const images = await docker.listImages({ filters: { label: ["perstack.managed=true", ...(options.label ? [options.label] : [])] } });
  const byRepository = new Map<string, Docker.ImageInfo[]>();
  for (const image of images) {
    if (!PRUNABLE_ROLES.has(image.Labels?.["perstack.role"] ?? "")) continue;
    const repository = (image.RepoTags ?? [])[0]?.replace(/:[^:/]+$/, "") ?? "<none>";
    byRepository.set(repository, [...(byRepository.get(repository) ?? []), image]);
  }
  const result: PruneResult = { removed: [], kept: [], skipped: [] };
  const doomedOf = (group: Docker.ImageInfo[]) => (options.all ? group : group.slice(1));
  for (const group of byRepository.values()) group.sort((a, b) => b.Created - a.Created);
  await removeFreeShellsUsing(docker, new Set([...byRepository.values()].flatMap((group) => doomedOf(group).map((image) => image.Id))));
  for (const group of byRepository.values()) {
    const [newest] = group;
    const doomed = doomedOf(group);
    if (!options.all && newest) result.kept.push(name(newest));
    for (const image of doomed) {
      try {
        await docker.getImage(image.Id).remove();
        result.removed.push(name(image));
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 409) throw error;
        result.skipped.push(name(image));
      }
    }
  }
  return result;
}

function name(image: Docker.ImageInfo): string {
  return image.RepoTags?.find((t) => t !== "<none>:<none>") ?? image.Id.slice(7, 19);
}
