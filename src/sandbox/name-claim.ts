// A container that never starts, created only for its name. The engine's container names are unique, so creating one
// is an atomic claim across processes and hosts sharing the engine: a run's slot (run-slots.ts), a warm shell's claim
// and a refill's lock (warm-shells.ts). Its labels say whose it is, so a claim of a process that died is swept like
// any leftover.
import type Docker from "dockerode";

/** The claim, or undefined when another process holds the name (409). Other Engine errors are thrown. */
export async function claimName(docker: Docker, name: string, image: string, labels: Record<string, string>): Promise<Docker.Container | undefined> {
  try {
    return await docker.createContainer({
      name,
      Image: image,
      Entrypoint: ["true"],
      Cmd: [],
      Labels: labels,
      NetworkDisabled: true,
      HostConfig: { NetworkMode: "none" },
    });
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 409) return undefined;
    throw error;
  }
}
