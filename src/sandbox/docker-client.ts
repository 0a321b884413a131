// The one place that connects to the Docker engine. dockerode honours DOCKER_HOST and friends.
import Docker from "dockerode";
import { DockerUnavailableError } from "../errors.js";
import { engineAddress } from "./docker-errors.js";

export async function connectDocker(): Promise<Docker> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (error) {
    const where = engineAddress();
    const code = (error as { code?: string }).code;
    if (code === "EACCES" || code === "EPERM") {
      throw new DockerUnavailableError(`cannot use the Docker engine at ${where}: no permission; add your user to the docker group and log in again, or run as a user who may use Docker`);
    }
    const why = code === "ENOENT" || code === "ECONNREFUSED" ? "nothing answers there" : "it does not answer";
    throw new DockerUnavailableError(`cannot reach the Docker engine at ${where} (${why}); start Docker, or set DOCKER_HOST`);
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
