// `perstack selftest`: a real sandbox on the user's engine, planned exactly as a run of the chosen runtime is (same
// image, networks, proxy, limits, workspace mode), whose agent is a probe (selftest/probe.ts) instead of the
// runtime's CLI. The host then checks what the probe saw against the plan, and what reached the workspace.
import { mkdtemp, readFile, rm, writeFile, mkdir, lstat } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import type Docker from "dockerode";
import { parseProxyLogLine } from "../collector/proxy-log.js";
import type { BaseImage, BaseImageRole, SandboxPlan } from "../plan/sandbox-plan.js";
import { runSandbox } from "../sandbox/run-sandbox.js";
import { SandboxResources } from "../sandbox/sandbox-resources.js";
import { refillInBackground } from "../sandbox/warm-shells.js";
import { evaluate, readProbeReport, type Check } from "../selftest/checks.js";
import { REPORT_KEY, type ProbeTargets } from "../selftest/probe.js";
import { prepareRun } from "./prepare-run.js";
import type { Breakable } from "./selftest-breaks.js";
import { rejectedDir, WorkspaceSession } from "./workspace-session.js";

/** Properties a test may break on purpose to prove that the selftest notices (never offered to users). */
export { BREAKABLE, type Breakable } from "./selftest-breaks.js";

export interface SelftestOptions {
  runtime?: string;
  workspaceMode?: "auto" | "bind" | "copy";
  caCertFiles: string[];
  processEnv: NodeJS.ProcessEnv;
  onProgress(message: string): void;
  signal: AbortSignal;
  breakOnPurpose?: Breakable;
}

export interface SelftestResult {
  runtime: string;
  workspaceMode: string;
  checks: Check[];
}

const EXPERT = "perstack-selftest";
const CANARY = "PERSTACK_SELFTEST_CANARY";
const EXTERNAL_NAME = "example.com";
const NOT_ALLOWLISTED = "not-allowlisted.perstack-selftest.test";
const IP_LITERAL = "198.51.100.7";
const DUMMY_KEYS = ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "CURSOR_API_KEY", "DEEPSEEK_API_KEY"];
const POLICY_ORIGINALS: Record<string, string> = {
  // One allowlisted name, for the checks that the proxy still refuses other ports and plain HTTP to it (the
  // provider's host is the gateway's business, not on the agent's allowlist). The probe never starts the skill.
  "perstack.toml": `[experts."${EXPERT}"]\ndescription = "Probes the sandbox"\ninstruction = "Probe the sandbox."\n[experts."${EXPERT}".skills."probe-net"]\ntype = "mcpSseSkill"\nendpoint = "https://allowlisted.perstack-selftest.example/sse"\nallowedDomains = ["allowlisted.perstack-selftest.example"]\n`,
  ".env": `${DUMMY_KEYS.map((k) => `${k}=perstack-selftest-not-a-key`).join("\n")}\n`,
};
/**
 * Variables the engine adds to every container; PWD, which the image's entrypoint shell sets; NODE_COMPILE_CACHE,
 * with which it points Node at the image's compile cache (templates/files/agent-entrypoint.sh).
 */
const CONTAINER_ENV = ["HOSTNAME", "PATH", "HOME", "PWD", "NODE_COMPILE_CACHE"];

/** Host variables perstack itself needs to plan like a normal run (CA certificates, base images); nothing secret. */
function plannerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const keep = ["PATH", "PERSTACK_EXTRA_CA_CERTS", "NODE_EXTRA_CA_CERTS", "PERSTACK_BASE_IMAGE_DEBIAN", "PERSTACK_BASE_IMAGE_NODE", "PERSTACK_SUBNET_POOL", "PERSTACK_MAX_CONCURRENT_RUNS", "PERSTACK_WARM_POOL"];
  return { ...Object.fromEntries(keep.filter((k) => env[k] !== undefined).map((k) => [k, env[k]])), [CANARY]: "must-not-reach-the-agent" };
}

export async function runSelftest(docker: Docker, baseImages: Record<BaseImageRole, BaseImage>, options: SelftestOptions): Promise<SelftestResult> {
  const workspace = await mkdtemp(join(tmpdir(), "perstack-selftest-"));
  const listener = await listenEverywhere();
  try {
    for (const [path, content] of Object.entries(POLICY_ORIGINALS)) await writeFile(join(workspace, path), content);
    const prepared = prepareRun(
      {
        expertKey: EXPERT,
        query: "selftest",
        cwd: workspace,
        ...(options.runtime ? { runtime: options.runtime } : {}),
        envNames: options.breakOnPurpose === "env" ? [CANARY] : [],
        caCertFiles: options.caCertFiles,
        ...(options.workspaceMode ? { workspaceMode: options.workspaceMode } : {}),
        processEnv: { ...plannerEnv(options.processEnv) },
      },
      baseImages,
    );
    const plan = prepared.plan;
    const hostGateway = await bridgeGateway(docker);
    const allowlisted = allowlistedName(plan);
    const targets: ProbeTargets = {
      hostGateway,
      hostPort: (listener.address() as { port: number }).port,
      proxyHost: plan.proxy.alias,
      proxyPort: plan.proxy.port,
      allowlisted,
      notAllowlisted: NOT_ALLOWLISTED,
      ipLiteral: IP_LITERAL,
      externalName: EXTERNAL_NAME,
      policyFiles: [...plan.agent.workspace.protected.files],
      perstackDir: plan.agent.workspace.protected.trees[0] ?? "perstack",
    };
    const probe = await readFile(fileURLToPath(new URL("../selftest/probe.js", import.meta.url)), "utf8");
    const sandboxPlan: SandboxPlan = breakPlan(
      {
        ...plan,
        agent: {
          ...plan.agent,
          command: ["node", "/home/agent/selftest/probe.mjs"],
          homeFiles: [...plan.agent.homeFiles, { path: "selftest/probe.mjs", content: probe }, { path: "selftest/targets.json", content: JSON.stringify(targets) }],
        },
      },
      options.breakOnPurpose,
    );

    const runDir = join(prepared.perstackDir, "selftest", plan.runId);
    await mkdir(runDir, { recursive: true });
    const session = new WorkspaceSession({ plan: sandboxPlan, keepDir: rejectedDir(runDir), owner: prepared.workspaceOwner, cwd: workspace, limits: { maxBytes: 1024 ** 3, maxEntries: 10_000 } });
    const hooks = await session.prepare();
    let stdout = "";
    const reasons = new Map<string, string>();
    let internalGateway: string | undefined;
    const internal = sandboxPlan.networks.find((n) => n.role === "internal")!.name;
    const resources = new SandboxResources(docker);
    const result = await runSandbox(docker, sandboxPlan, {
      env: { ...prepared.envValues, ...(options.breakOnPurpose === "env" ? { [CANARY]: "must-not-reach-the-agent" } : {}) },
      // The probe makes no model call: the gateway only has to start, so a missing key gets a stand-in value.
      gatewayEnv: {
        ...Object.fromEntries((sandboxPlan.gateway?.credentials ?? []).map((k) => [k.name, "selftest-no-provider-key"])),
        ...prepared.gatewayEnv,
      },
      filesDir: join(runDir, "sandbox"),
      buildProgress: (p) => options.onProgress(`[build ${p.image.role}] ${p.message}`),
      containerStatus: (service, status) => {
        if (service === "agent" && status === "running") {
          void docker
            .getNetwork(internal)
            .inspect()
            .then((info: { IPAM?: { Config?: Array<{ Gateway?: string }> } }) => {
              internalGateway = info.IPAM?.Config?.[0]?.Gateway;
            })
            .catch(() => undefined);
        }
      },
      agentStdout: new Writable({
        write(chunk: Buffer, _encoding, callback) {
          if (stdout.length < 1_000_000) stdout += chunk.toString("utf8");
          callback();
        },
      }),
      agentStderr: new Writable({ write: (_chunk, _encoding, callback) => callback() }),
      proxyLogLine: (line) => {
        const decision = parseProxyLogLine(line);
        if (decision?.reason) reasons.set(`${decision.domain}:${decision.port}`, decision.reason);
      },
      signal: options.signal,
      workspace: hooks,
      resources,
      sharing: prepared.sharing,
      waitingForSlot: (running) => options.onProgress(`waiting for a free run slot (${running} running)…`),
    }).finally(async () => {
      await resources.removeAll();
      await refillInBackground(docker, resources);
    });
    const outcome = await session.finish();
    if (result.aborted) throw new Error("interrupted");

    const read = readProbeReport(stdout, REPORT_KEY);
    if ("problem" in read) {
      return { runtime: plan.runtime.name, workspaceMode: sandboxPlan.agent.workspace.mode, checks: [{ name: "the probe ran", ok: false, expected: "a report on stdout", seen: read.problem }] };
    }
    const imageEnv = await imageEnvNames(docker, sandboxPlan.agent.image);
    const checks = evaluate(read.report, {
      hostGateway,
      hostPort: targets.hostPort,
      ...(internalGateway ? { internalGateway } : {}),
      pidsLimit: sandboxPlan.agent.limits.pidsLimit,
      memoryBytes: sandboxPlan.agent.limits.memoryBytes,
      cpus: sandboxPlan.agent.limits.nanoCpus / 1e9,
      allowedEnv: new Set([...sandboxPlan.agent.env.filter((e) => e.name !== CANARY).map((e) => e.name), ...imageEnv, ...CONTAINER_ENV]),
      canary: CANARY,
      proxyReasons: reasons,
      targets: { notAllowlisted: NOT_ALLOWLISTED, allowlisted, ipLiteral: IP_LITERAL, externalName: EXTERNAL_NAME },
      ...(await policyDamage(workspace, targets)),
      policyNotes: outcome.notices.map((n) => n.message.replace(workspace, ".")),
      dnsBudgetMs: 1_000,
    });
    return { runtime: plan.runtime.name, workspaceMode: sandboxPlan.agent.workspace.mode, checks };
  } finally {
    listener.close();
    await rm(workspace, { recursive: true, force: true });
  }
}

/** The plan with one isolation property removed, for the test that proves the selftest notices. */
function breakPlan(plan: SandboxPlan, what: Breakable | undefined): SandboxPlan {
  if (what !== "internal-gateway") return plan;
  return { ...plan, networks: plan.networks.map((n) => (n.role === "internal" ? { ...n, options: {} } : n)) };
}

/** A name the proxy allows (never reached: only requests it must refuse use it). */
function allowlistedName(plan: SandboxPlan): string {
  const first = plan.proxy.allowlist[0] ?? "allowlisted.perstack-selftest.test";
  return first.startsWith("*.") ? `perstack-selftest.${first.slice(2)}` : first;
}

/** A TCP listener on every host address: if the agent can connect to it, it can reach the host. */
function listenEverywhere(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once("error", () => {
      // No IPv6 on this host: all IPv4 addresses are enough.
      const v4 = createServer((socket) => socket.destroy());
      v4.once("error", reject);
      v4.listen({ port: 0, host: "0.0.0.0" }, () => resolve(v4));
    });
    server.listen({ port: 0, host: "::", ipv6Only: false }, () => resolve(server));
  });
}

async function bridgeGateway(docker: Docker): Promise<string> {
  const info = (await docker.getNetwork("bridge").inspect()) as { IPAM?: { Config?: Array<{ Gateway?: string }> } };
  return info.IPAM?.Config?.find((c) => c.Gateway && !c.Gateway.includes(":"))?.Gateway ?? "172.17.0.1";
}

async function imageEnvNames(docker: Docker, image: string): Promise<string[]> {
  const info = await docker.getImage(image).inspect();
  return (info.Config?.Env ?? []).map((entry) => entry.split("=")[0]!);
}

/** What of the probe's writes reached the workspace: undefined when nothing did. */
async function policyDamage(workspace: string, targets: ProbeTargets): Promise<{ policyDamage?: string }> {
  const damage: string[] = [];
  for (const path of targets.policyFiles) {
    const original = POLICY_ORIGINALS[path];
    const now = await readFile(join(workspace, path), "utf8").catch(() => undefined);
    if (original !== undefined ? now !== original : now !== undefined) damage.push(`${path} ${original === undefined ? "was created" : "changed"}`);
  }
  const planted = join(workspace, targets.perstackDir, "selftest-probe");
  if (await lstat(planted).catch(() => undefined)) damage.push(`${targets.perstackDir}/selftest-probe was created`);
  return damage.length > 0 ? { policyDamage: damage.join("; ") } : {};
}
