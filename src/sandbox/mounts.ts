// Mount specs for the Engine API's Mounts field. Binds strings ("src:dst:ro") break on host paths with ':'.
import type Docker from "dockerode";

export function bindMount(source: string, target: string, readOnly: boolean): Docker.MountSettings {
  return { Type: "bind", Source: source, Target: target, ReadOnly: readOnly };
}

/**
 * A named volume. By default the image's directory is not copied into it (the workspace copy fills it); with
 * `copyFromImage` Docker copies it into the volume while that is empty, with the directory's owner and mode, which
 * is how the agent's uid gets a new workspace volume's root (workspace-volume.ts).
 */
export function volumeMount(name: string, target: string, options: { copyFromImage?: boolean } = {}): Docker.MountSettings {
  return { Type: "volume", Source: name, Target: target, VolumeOptions: { NoCopy: !options.copyFromImage } } as Docker.MountSettings;
}
