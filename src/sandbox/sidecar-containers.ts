// The proxy's and the gateway's containers as the Engine API creates them, whether for one run (run-sandbox.ts) or as a
// warm shell that a run claims later (warm-shells.ts): the same lockdown, and no run's configuration in either. Both
// wait for it on stdin (the handover), so nothing in their metadata says which run they serve or holds a secret.
// And a warm shell's holder of the agent's network namespace.
import type Docker from "dockerode";
import { GATEWAY_CONFIG_DIR, HANDOVER_ENV, HANDOVER_STDIN as HANDOVER_FROM_STDIN } from "../gateway/handover.js";
import { NO_IPV6_SYSCTLS, PROXY_TMPFS } from "../plan/container-settings.js";
import { AGENT_NETWORK_ROLE } from "../plan/warm-shell.js";

/** How the proxy container is locked down, whatever network it sits on. */
export const PROXY_HARDENING = {
  ReadonlyRootfs: true,
  Tmpfs: PROXY_TMPFS,
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  Memory: 256 * 1024 ** 2,
  PidsLimit: 128,
};

/** How the gateway container is locked down: it holds the real credentials, so it gets no more than it needs. */
export const GATEWAY_HARDENING = {
  ReadonlyRootfs: true,
  // The config directory holds what the handover brings (the gateway's uid, 1000, writes it; nobody else reads it).
  Tmpfs: { "/tmp": "rw,nosuid,nodev,noexec,size=16m", [GATEWAY_CONFIG_DIR]: "rw,nosuid,nodev,noexec,size=16m,uid=1000,gid=1000,mode=0700" },
  CapDrop: ["ALL"],
  SecurityOpt: ["no-new-privileges"],
  Memory: 256 * 1024 ** 2,
  PidsLimit: 128,
};

/**
 * A sidecar's stdin, for its handover: open until the one write, then closed for good (StdinOnce), so nothing can be
 * handed over twice.
 */
const HANDOVER_STDIN = { AttachStdin: true, OpenStdin: true, StdinOnce: true };

export interface SidecarContainer {
  name: string;
  image: string;
  labels: Record<string, string>;
  /** The egress network the container is created on. */
  egress: string;
  extraHosts: string[];
}

/** The proxy, on the egress network; connectProxyToInternal puts it on the internal one before it starts. */
export function proxyCreateOptions(proxy: SidecarContainer): Docker.ContainerCreateOptions {
  return {
    name: proxy.name,
    Image: proxy.image,
    Labels: { ...proxy.labels, "perstack.role": "proxy" },
    Env: ["PERSTACK_PROXY_HANDOVER=stdin"],
    ...HANDOVER_STDIN,
    HostConfig: {
      NetworkMode: proxy.egress,
      ExtraHosts: proxy.extraHosts,
      Sysctls: NO_IPV6_SYSCTLS,
      ...PROXY_HARDENING,
    },
  };
}

/** The proxy's place on the internal network: a fixed address, known to the agent before either starts. */
export function connectProxyToInternal(docker: Docker, proxy: Docker.Container, internal: string, alias: string, address: string): Promise<unknown> {
  return docker.getNetwork(internal).connect({ Container: proxy.id, EndpointConfig: { Aliases: [alias], IPAMConfig: { IPv4Address: address } } });
}

/** The gateway, on the egress network only, by its alias. */
export function gatewayCreateOptions(gateway: SidecarContainer & { alias: string }): Docker.ContainerCreateOptions {
  return {
    name: gateway.name,
    Image: gateway.image,
    Labels: { ...gateway.labels, "perstack.role": "gateway" },
    Env: [`${HANDOVER_ENV}=${HANDOVER_FROM_STDIN}`],
    ...HANDOVER_STDIN,
    HostConfig: {
      NetworkMode: gateway.egress,
      ExtraHosts: gateway.extraHosts,
      Sysctls: NO_IPV6_SYSCTLS,
      ...GATEWAY_HARDENING,
    },
    NetworkingConfig: { EndpointsConfig: { [gateway.egress]: { Aliases: [gateway.alias] } } },
  };
}

/**
 * A container that only holds a network namespace for a run's agent to join (NetworkMode container:<it>): on the
 * internal network at the agent's fixed address, with the agent's resolver, host entry for the proxy and network
 * sysctls, all of which belong to the namespace. It runs `sleep` as nobody, with nothing writable and no capability;
 * it listens on nothing, so the agent that joins it finds no one else there.
 */
export function agentNetworkHolderOptions(holder: {
  name: string;
  image: string;
  labels: Record<string, string>;
  internal: string;
  agentAddress: string;
  proxyHost: string;
  dns: string[];
  sysctls: Record<string, string>;
}): Docker.ContainerCreateOptions {
  return {
    name: holder.name,
    Image: holder.image,
    Entrypoint: ["sleep", "infinity"],
    Cmd: [],
    User: "65534:65534",
    Labels: { ...holder.labels, "perstack.role": AGENT_NETWORK_ROLE },
    HostConfig: {
      NetworkMode: holder.internal,
      ExtraHosts: [holder.proxyHost],
      Dns: holder.dns,
      Sysctls: holder.sysctls,
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Memory: 16 * 1024 ** 2,
      PidsLimit: 8,
    },
    NetworkingConfig: { EndpointsConfig: { [holder.internal]: { IPAMConfig: { IPv4Address: holder.agentAddress } } } },
  };
}
