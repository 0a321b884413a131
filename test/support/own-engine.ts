// A second Docker engine that a test owns outright, so it can kill and restart it without touching the machine's
// engine: its own socket, data root, exec root (and so its own containerd), pid file and config file, on a default
// bridge of its own.
//
// Why each setting:
// - `--bridge=<own bridge>`: `--bridge=none` would not do, since an engine without a bridge deletes the link named
//   docker0, the main engine's (seen on 20.10). The test creates the bridge, and the engine's host-gateway
//   (host.docker.internal) is its address, a host address like any other.
// - `--iptables=false --ip6tables=false`: two engines rewriting the same DOCKER chains would fight. Without them,
//   nothing lets bridged traffic through the host's FORWARD chain (DROP, with br_netfilter on), so the test adds one
//   rule of its own: traffic between addresses of its runs' subnet pool, which is only traffic between the sandbox's
//   own containers. What a run sends to the fake model goes to the bridge's address, a host address, and from there
//   through the main engine's own published-port rules.
// - `--config-file`: the main engine's /etc/docker/daemon.json must not apply (a setting there repeated as a flag
//   here would stop it from starting).
// - `--containerd-namespace`: should the engine find a system containerd and share it, its containers stay apart.
// - The data root is a tmpfs: loading the images costs half the time it takes on disk, and removing them nothing.
//
// Root only (dockerd, ip, iptables); the caller checks.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import Docker from "dockerode";
import { inTurn } from "../../src/sandbox/in-turn.js";

/** The runs' networks come from here (PERSTACK_SUBNET_POOL): 16 subnets, 8 runs at once. */
const RUN_POOL = "10.213.240.0/24";
const BRIDGE_ADDRESS = "10.213.254.1/24";
const ANSWER_BOUND_MS = 45_000;
/** Room for the images of one run of the built-in runtime (about 0.7 GB) and its containers; used as written. */
const DATA_ROOT_SIZE = "3g";
const STOP_BOUND_MS = 30_000;

export interface OwnEngine {
  /** DOCKER_HOST for commands that use it. */
  host: string;
  /** PERSTACK_SUBNET_POOL for runs on it. */
  pool: string;
  /** A client for it that opens a new connection per request (a restarted engine drops the old ones). */
  client: Docker;
  /** Sends dockerd `signal`; resolves once the process has exited. */
  stop(signal: "SIGKILL" | "SIGTERM"): Promise<void>;
  /** Starts dockerd again on the same directories; resolves once it answers. */
  start(): Promise<void>;
  /** Copies images from the main engine (docker save | docker load). */
  loadImages(refs: string[]): Promise<void>;
  /** Removes its containers and networks, stops it, and removes its directories, bridge and firewall rule. */
  destroy(): Promise<void>;
}

/** The programs an own engine needs, or why it cannot start here. */
export function ownEngineTools(): { ok: true; tools: Record<"dockerd" | "docker" | "ip" | "iptables", string> } | { ok: false; reason: string } {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin", "/usr/local/sbin"].filter((dir) => dir !== "");
  const find = (name: string) => dirs.map((dir) => join(dir, name)).find((path) => existsSync(path));
  const tools = { dockerd: find("dockerd"), docker: find("docker"), ip: find("ip"), iptables: find("iptables") };
  const missing = Object.entries(tools).filter(([, path]) => !path).map(([name]) => name);
  if (missing.length > 0) return { ok: false, reason: `${missing.join(", ")} not installed` };
  return { ok: true, tools: tools as Record<"dockerd" | "docker" | "ip" | "iptables", string> };
}

export async function startOwnEngine(): Promise<OwnEngine> {
  const found = ownEngineTools();
  if (!found.ok) throw new Error(`cannot start a Docker engine of the test's own: ${found.reason}`);
  const { tools } = found;
  // Short: containerd's sockets live under the exec root, and a socket path has at most 107 bytes.
  const dir = mkdtempSync(join(tmpdir(), "pst-engine-"));
  const socket = join(dir, "docker.sock");
  const logFile = join(dir, "dockerd.log");
  const bridge = `pst-own-${process.pid % 10_000_000}`;
  const rule = ["FORWARD", "-s", RUN_POOL, "-d", RUN_POOL, "-m", "comment", "--comment", `perstack-own-engine-${bridge}`, "-j", "ACCEPT"];
  writeFileSync(join(dir, "daemon.json"), "{}\n");
  mkdirSync(join(dir, "data"), { mode: 0o711 });
  mkdirSync(join(dir, "exec"));
  const args = [
    "--host", `unix://${socket}`,
    "--data-root", join(dir, "data"),
    "--exec-root", join(dir, "exec"),
    "--pidfile", join(dir, "docker.pid"),
    "--config-file", join(dir, "daemon.json"),
    "--containerd-namespace", "perstack-own-engine",
    "--containerd-plugins-namespace", "perstack-own-engine-plugins",
    "--bridge", bridge,
    "--iptables=false",
    "--ip6tables=false",
  ];
  const containerdPidFile = join(dir, "exec", "containerd", "containerd.pid");
  const client = new Docker({ socketPath: socket, agent: new http.Agent({ keepAlive: false }) } as Docker.DockerOptions);
  let bridgeMade = false;
  let ruleAdded = false;
  let daemon: { process: ChildProcess; exited: Promise<void> } | undefined;

  const lastLog = () => {
    try {
      return readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join("\n");
    } catch {
      return "(no log)";
    }
  };
  const running = () => daemon !== undefined && daemon.process.exitCode === null && daemon.process.signalCode === null;

  const start = async () => {
    const log = openSync(logFile, "a");
    const child = spawn(tools.dockerd, args, { detached: true, stdio: ["ignore", log, log] });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.once("error", () => undefined);
    daemon = { process: child, exited };
    const deadline = Date.now() + ANSWER_BOUND_MS;
    for (;;) {
      if (!running()) throw new Error(`the test's own dockerd exited at start:\n${lastLog()}`);
      try {
        await (client.ping as (o: { abortSignal: AbortSignal }) => Promise<unknown>).call(client, { abortSignal: AbortSignal.timeout(1_000) });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`the test's own dockerd did not answer within ${ANSWER_BOUND_MS / 1000} s:\n${lastLog()}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  };

  const stop = async (signal: "SIGKILL" | "SIGTERM") => {
    if (!daemon || !running()) return;
    const { process: child, exited } = daemon;
    const containerdPid = readPid(containerdPidFile);
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_BOUND_MS);
    await exited;
    clearTimeout(timer);
    // Its containerd dies with it, but stays a zombie until init reaps it (about a second here). A dockerd started
    // meanwhile takes the pid in containerd's pid file for a live containerd, waits for its socket and gives up.
    if (containerdPid !== undefined) {
      const deadline = Date.now() + STOP_BOUND_MS;
      while (processState(containerdPid) === "alive" && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      if (processState(containerdPid) === "zombie" && readPid(containerdPidFile) === containerdPid) rmSync(containerdPidFile, { force: true });
    }
  };

  const loadImages = async (refs: string[]) => {
    const save = spawn(tools.docker, ["save", ...refs], { stdio: ["ignore", "pipe", "pipe"] });
    const load = spawn(tools.docker, ["--host", `unix://${socket}`, "load", "--quiet"], { stdio: ["pipe", "ignore", "pipe"] });
    save.stdout!.pipe(load.stdin!);
    const result = (child: ChildProcess, what: string) =>
      new Promise<void>((resolve, reject) => {
        let stderr = "";
        child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
        child.once("error", reject);
        child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}: ${stderr.trim()}`))));
      });
    await Promise.all([result(save, "docker save"), result(load, "docker load")]);
  };

  const destroy = async () => {
    const problems: string[] = [];
    const step = async (what: string, work: () => unknown) => {
      try {
        await work();
      } catch (error) {
        problems.push(`${what}: ${(error as Error).message}`);
      }
    };
    // Started again if it is down, so that it stops what it left (a killed engine leaves its containers running).
    if (!running()) await step("starting it to clean up", start);
    if (running()) {
      await step("removing its containers", async () => {
        const containers = await client.listContainers({ all: true });
        // In turn, as the product removes them (src/sandbox/in-turn.ts: Docker 20.10's deadlock).
        await inTurn(containers, async (c) => {
          await client.getContainer(c.Id).remove({ force: true });
        });
      });
      await step("removing its networks", async () => {
        const networks = await client.listNetworks();
        await Promise.all(networks.filter((n) => !["bridge", "host", "none"].includes(n.Name)).map((n) => client.getNetwork(n.Id).remove()));
      });
    }
    await step("stopping it", () => stop("SIGTERM"));
    // The data root's tmpfs, the engine's own bind mount of it, and any container mount a killed engine left.
    await step("unmounting its directories", () => {
      const mounts = readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .map((line) => line.split(" ")[4] ?? "")
        .filter((point) => point === dir || point.startsWith(`${dir}/`))
        .sort((a, b) => b.length - a.length);
      for (const point of mounts) execFileSync("umount", ["-l", point]);
    });
    await step("removing its directories", () => rmSync(dir, { recursive: true, force: true }));
    if (ruleAdded) await step("removing its firewall rule", () => execFileSync(tools.iptables, ["-D", ...rule]));
    if (bridgeMade) await step("removing its bridge", () => execFileSync(tools.ip, ["link", "del", bridge]));
    if (problems.length > 0) throw new Error(`the test's own engine was not cleaned up completely: ${problems.join("; ")}`);
  };

  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${DATA_ROOT_SIZE},mode=0711`, "tmpfs", join(dir, "data")]);
    execFileSync(tools.ip, ["link", "add", "name", bridge, "type", "bridge"]);
    bridgeMade = true;
    execFileSync(tools.ip, ["addr", "add", BRIDGE_ADDRESS, "dev", bridge]);
    execFileSync(tools.ip, ["link", "set", bridge, "up"]);
    execFileSync(tools.iptables, ["-I", ...rule]);
    ruleAdded = true;
    await start();
  } catch (error) {
    await destroy().catch(() => undefined);
    throw error;
  }
  return { host: `unix://${socket}`, pool: RUN_POOL, client, stop, start, loadImages, destroy };
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processState(pid: number): "alive" | "zombie" | "gone" {
  try {
    // /proc/<pid>/stat: "pid (comm) state ..."; comm may hold spaces and parentheses, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z" ? "zombie" : "alive";
  } catch {
    return "gone";
  }
}
