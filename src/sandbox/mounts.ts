// Mount specs for the Engine API's Mounts field. Binds strings ("src:dst:ro") break on host paths with ':'.
import type Docker from "dockerode";

export function bindMount(source: string, target: string, readOnly: boolean): Docker.MountSettings {
  return { Type: "bind", Source: source, Target: target, ReadOnly: readOnly };
}

export function volumeMount(name: string, target: string): Docker.MountSettings {
  // The image's (empty) directory is not copied into the volume: the workspace copy fills it.
  return { Type: "volume", Source: name, Target: target, VolumeOptions: { NoCopy: true } } as Docker.MountSettings;
}
