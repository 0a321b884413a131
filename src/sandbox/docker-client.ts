// The one place that connects to the Docker engine. dockerode honours DOCKER_HOST and friends.
import Docker from "dockerode";
import { DockerUnavailableError } from "../errors.js";

export async function connectDocker(): Promise<Docker> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (error) {
    const where = process.env.DOCKER_HOST ?? "/var/run/docker.sock";
    throw new DockerUnavailableError(
      `cannot reach the Docker engine at ${where} (${(error as Error).message}); start Docker, or set DOCKER_HOST`,
    );
  }
  return docker;
}

export async function imageExists(docker: Docker, ref: string): Promise<string | undefined> {
  try {
    const info = await docker.getImage(ref).inspect();
    return info.Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}
