// `perstack images`: bootstrap, list and prune. Loaded only when one of them runs.
import { caCertFiles, readCaBundle } from "../config/ca-certs.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { bootstrapBaseImages, overridesFromEnv, resolveBaseImages } from "../sandbox/base-images.js";
import { pruneImages } from "../sandbox/image-prune.js";

export async function bootstrapCommand(options: { mirror?: string; force?: boolean; caCert: string[] }): Promise<number> {
  const docker = await connectDocker();
  const files = caCertFiles(options.caCert, process.env);
  readCaBundle(files, process.cwd()); // the same one-line errors as runs for unreadable files
  const images = await bootstrapBaseImages(docker, {
    ...(options.mirror ? { mirror: options.mirror } : {}),
    ...(options.force ? { force: true } : {}),
    caCertFiles: files,
    onProgress: (message) => process.stderr.write(`${message}\n`),
  });
  for (const image of Object.values(images)) process.stdout.write(`${image.role}\t${image.ref}\t${image.id ?? ""}\n`);
  return 0;
}

export async function listImagesCommand(): Promise<number> {
  const docker = await connectDocker();
  const images = await docker.listImages({ filters: { label: ["perstack.managed=true"] } });
  for (const image of images) {
    for (const tag of image.RepoTags ?? []) {
      process.stdout.write(`${tag}\t${image.Labels?.["perstack.role"] ?? ""}\t${(image.Size / 1024 ** 2).toFixed(0)} MB\n`);
    }
  }
  const resolved = await resolveBaseImages(docker, overridesFromEnv(process.env));
  for (const image of Object.values(resolved)) process.stdout.write(`base ${image.role}: ${image.ref}${image.id ? "" : " (not present locally)"}\n`);
  return 0;
}

export async function pruneImagesCommand(options: { all?: boolean }): Promise<number> {
  const docker = await connectDocker();
  const result = await pruneImages(docker, { all: Boolean(options.all) });
  for (const ref of result.removed) process.stdout.write(`removed ${ref}\n`);
  for (const ref of result.skipped) process.stdout.write(`in use, kept ${ref}\n`);
  process.stderr.write(`removed ${result.removed.length} image(s), kept ${result.kept.length + result.skipped.length}\n`);
  return 0;
}
