// EFFECTS: the volume that holds the agent's copy of the workspace in copy mode, filled and read back through the
// Engine API's archive endpoints (so it works whatever the agent's uid, and without host paths).
import type { Readable } from "node:stream";
import type Docker from "dockerode";
import { SandboxError } from "../errors.js";
import type { SandboxPlan } from "../plan/sandbox-plan.js";
import { volumeMount } from "./mounts.js";
import type { SandboxResources } from "./sandbox-resources.js";

/** Who owns /workspace in every agent image (templates/agent.Dockerfile.hbs): the default agent user. */
export const IMAGE_WORKSPACE_OWNER = "1000:1000";

/**
 * Creates the volume and hands its root to the agent's uid; says whether the agent's mount must take that owner from
 * the image. A new volume's root belongs to root, and extracting an archive into it never changes the root's own
 * owner. For the default user the image does it: mounted without NoCopy, an empty volume gets the image directory's
 * (empty) content and its owner when the agent container is created, so no container runs for it (some 0.2 s off
 * every copy-mode start). For any other uid a one-shot container from the agent image (which is there already) does
 * the chown, with nothing but CAP_CHOWN and no network; the agent's mount must then not copy, or the image's owner
 * would replace it.
 */
export async function createWorkspaceVolume(
  docker: Docker,
  plan: SandboxPlan,
  volumeName: string,
  labels: Record<string, string>,
  resources: SandboxResources,
): Promise<{ ownerFromImage: boolean }> {
  await docker.createVolume({ Name: volumeName, Labels: { ...labels, "perstack.role": "workspace" } });
  resources.volume(volumeName);
  if (plan.agent.user === IMAGE_WORKSPACE_OWNER) return { ownerFromImage: true };
  const name = `${plan.agent.containerName}-prepare`;
  const helper: Docker.Container = await docker.createContainer({
    name,
    Image: plan.agent.image,
    Entrypoint: ["chown", plan.agent.user, "/workspace"],
    Cmd: [],
    User: "0:0",
    Labels: { ...labels, "perstack.role": "workspace-prepare" },
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: "none",
      Mounts: [volumeMount(volumeName, "/workspace")],
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      CapAdd: ["CHOWN"],
      SecurityOpt: ["no-new-privileges"],
      PidsLimit: 16,
    },
  });
  resources.container(name, helper);
  await helper.start();
  const waited = (await helper.wait()) as { StatusCode: number };
  if (waited.StatusCode !== 0) {
    throw new SandboxError(`preparing the workspace volume ${volumeName} failed (chown exited with ${waited.StatusCode})`);
  }
  await resources.release(name);
  return { ownerFromImage: false };
}

/** Extracts a tar stream (entry names relative to /workspace) into the agent container's /workspace. */
export async function fillWorkspace(agent: Docker.Container, archive: Readable): Promise<void> {
  await agent.putArchive(archive as unknown as NodeJS.ReadableStream, { path: "/workspace", noOverwriteDirNonDir: "true" });
}

/** The agent's /workspace as a tar stream; entry names start with "workspace/". The content is the agent's: hostile. */
export async function readWorkspace(agent: Docker.Container): Promise<NodeJS.ReadableStream> {
  return agent.getArchive({ path: "/workspace" });
}
