// Runs INSIDE the agent container for `perstack selftest`: tries, as an agent would, every way out of the sandbox
// that the checks cover, and prints what it saw as one JSON line. It judges nothing: the host compares what was
// seen with what the plan promises (selftest/checks.ts). Node built-ins only: it is copied into the agent's HOME
// as a single file.
import { Resolver, lookup } from "node:dns/promises";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";

export interface ProbeTargets {
  /** The Docker host's address on the default bridge (host.docker.internal), and a port the host listens on. */
  hostGateway: string;
  hostPort: number;
  proxyHost: string;
  proxyPort: number;
  /** An allowlisted name (never actually reached: only refusals are probed). */
  allowlisted: string;
  notAllowlisted: string;
  ipLiteral: string;
  /** An external name that must not resolve. */
  externalName: string;
  /** Workspace-relative paths the agent must not be able to change. */
  policyFiles: string[];
  perstackDir: string;
}

export interface Attempt {
  ok: boolean;
  /** An error code or message when it failed. */
  error?: string;
  ms: number;
  detail?: string;
}

export interface ProbeReport {
  uid: number;
  gid: number;
  status: Record<string, string>;
  rootWrite: Attempt;
  rootMount?: string;
  dockerSockets: string[];
  dnsSystem: Attempt;
  dnsEmbedded: Attempt;
  hostGateway: Attempt;
  internalGateway: Attempt & { address?: string };
  ipv6: { disabled?: string; addresses: string[]; route: Attempt };
  proxy: Record<"notAllowlisted" | "otherPort" | "ipLiteral" | "plainHttp", Attempt>;
  /** cgroup limits as the kernel reports them; cpuMax is "quota period" (cgroup v2's cpu.max format). */
  limits: { pidsMax?: string; memoryMax?: string; cpuMax?: string };
  policyWrites: Array<{ path: string } & Attempt>;
  env: string[];
}

export const REPORT_KEY = "perstackSelftest";

async function timed(run: () => Promise<string | undefined>): Promise<Attempt> {
  const start = Date.now();
  try {
    const detail = await run();
    return { ok: true, ms: Date.now() - start, ...(detail !== undefined ? { detail } : {}) };
  } catch (error) {
    const err = error as NodeJS.ErrnoException;
    return { ok: false, error: err.code ?? err.message, ms: Date.now() - start };
  }
}

function tcp(host: string, port: number, timeoutMs = 3_000): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Sends one request to the proxy and returns the status code of its answer. */
function proxyStatus(targets: ProbeTargets, request: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: targets.proxyHost, port: targets.proxyPort });
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error("no answer from the proxy"), { code: "ETIMEDOUT" }));
    }, 5_000);
    socket.once("connect", () => socket.write(request));
    socket.on("data", (chunk: Buffer) => {
      data += chunk.toString("latin1");
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (status) {
        clearTimeout(timer);
        socket.destroy();
        resolve(status[1]);
      }
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("end", () => {
      clearTimeout(timer);
      reject(Object.assign(new Error("the proxy closed the connection"), { code: "ECONNRESET" }));
    });
  });
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** The first host address of the container's own IPv4 subnet: where Docker puts a network's gateway. */
function internalGatewayAddress(): string | undefined {
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (name === "lo") continue;
    for (const a of addresses ?? []) {
      if (a.family !== "IPv4" || a.internal) continue;
      const ip = a.address.split(".").map(Number);
      const mask = a.netmask.split(".").map(Number);
      const network = ip.map((octet, i) => octet & mask[i]!);
      network[3] = network[3]! + 1;
      return network.join(".");
    }
  }
  return undefined;
}

export async function probe(targets: ProbeTargets): Promise<ProbeReport> {
  const status: Record<string, string> = {};
  for (const line of (readOptional("/proc/self/status") ?? "").split("\n")) {
    const match = /^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):\s*(\S+)/.exec(line);
    if (match) status[match[1]!] = match[2]!;
  }
  const rootMount = (readOptional("/proc/self/mounts") ?? "").split("\n").map((l) => l.split(" ")).find((f) => f[1] === "/")?.[3]?.split(",")[0];
  const embedded = new Resolver({ timeout: 1_000, tries: 1 });
  embedded.setServers(["127.0.0.11"]);
  const gateway = internalGatewayAddress();
  const ipv6Addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).filter((a) => a.family === "IPv6").map((a) => a.address));
  const policyWrites: ProbeReport["policyWrites"] = [];
  for (const path of [...targets.policyFiles, join(targets.perstackDir, "selftest-probe")]) {
    const attempt = await timed(async () => {
      writeFileSync(join("/workspace", path), "# written by the selftest probe: an agent trying to change its own policy\n");
      return undefined;
    });
    policyWrites.push({ path, ...attempt });
  }
  return {
    uid: process.getuid?.() ?? -1,
    gid: process.getgid?.() ?? -1,
    status,
    rootWrite: await timed(async () => {
      writeFileSync("/etc/perstack-selftest", "x");
      return undefined;
    }),
    ...(rootMount ? { rootMount } : {}),
    dockerSockets: ["/var/run/docker.sock", "/run/docker.sock", "/var/run/docker/docker.sock", ...(process.env.DOCKER_HOST ? [`DOCKER_HOST=${process.env.DOCKER_HOST}`] : [])].filter(
      (p) => p.startsWith("DOCKER_HOST") || existsSync(p),
    ),
    dnsSystem: await timed(async () => (await lookup(targets.externalName, { all: true })).map((a) => a.address).join(" ")),
    dnsEmbedded: await timed(async () => (await embedded.resolve4(targets.externalName)).join(" ")),
    hostGateway: await timed(() => tcp(targets.hostGateway, targets.hostPort)),
    internalGateway: gateway ? { address: gateway, ...(await timed(() => tcp(gateway, targets.hostPort))) } : { ok: false, error: "no IPv4 address", ms: 0 },
    ipv6: {
      ...(readOptional("/proc/sys/net/ipv6/conf/all/disable_ipv6") !== undefined ? { disabled: readOptional("/proc/sys/net/ipv6/conf/all/disable_ipv6") } : {}),
      addresses: ipv6Addresses,
      // Documentation prefix: never a real host. With no IPv6 address at all, connect fails before sending anything.
      route: await timed(() => tcp("2001:db8::1", 80, 2_000)),
    },
    proxy: {
      notAllowlisted: await timed(() => proxyStatus(targets, `CONNECT ${targets.notAllowlisted}:443 HTTP/1.1\r\nHost: ${targets.notAllowlisted}:443\r\n\r\n`)),
      otherPort: await timed(() => proxyStatus(targets, `CONNECT ${targets.allowlisted}:8443 HTTP/1.1\r\nHost: ${targets.allowlisted}:8443\r\n\r\n`)),
      ipLiteral: await timed(() => proxyStatus(targets, `CONNECT ${targets.ipLiteral}:443 HTTP/1.1\r\nHost: ${targets.ipLiteral}:443\r\n\r\n`)),
      plainHttp: await timed(() => proxyStatus(targets, `GET http://${targets.allowlisted}/ HTTP/1.1\r\nHost: ${targets.allowlisted}\r\n\r\n`)),
    },
    limits: {
      ...optional("pidsMax", readOptional("/sys/fs/cgroup/pids.max") ?? readOptional("/sys/fs/cgroup/pids/pids.max")),
      ...optional("memoryMax", readOptional("/sys/fs/cgroup/memory.max") ?? readOptional("/sys/fs/cgroup/memory/memory.limit_in_bytes")),
      ...optional("cpuMax", readOptional("/sys/fs/cgroup/cpu.max") ?? cgroupV1Cpu()),
    },
    policyWrites,
    env: Object.keys(process.env).sort(),
  };
}

function cgroupV1Cpu(): string | undefined {
  const quota = readOptional("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
  const period = readOptional("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  return quota !== undefined && period !== undefined ? `${quota} ${period}` : undefined;
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

// Run as a script: the targets file sits next to this one.
if (process.argv[1] && /probe\.m?js$/.test(process.argv[1])) {
  const targets = JSON.parse(readFileSync(join(process.argv[1], "..", "targets.json"), "utf8")) as ProbeTargets;
  const report = await probe(targets);
  process.stdout.write(`${JSON.stringify({ [REPORT_KEY]: report })}\n`);
}
