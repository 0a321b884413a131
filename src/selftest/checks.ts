// PURE: what `perstack selftest` concludes. The probe's report came out of the agent container, so it is read as
// hostile input (validated, every field optional); each check compares one thing it saw with what the plan
// promises, and says both.
import { z } from "zod";
import type { ProbeReport } from "./probe.js";

export interface Check {
  name: string;
  ok: boolean;
  expected: string;
  seen: string;
}

const attempt = z.object({ ok: z.boolean(), error: z.string().max(500).optional(), ms: z.number(), detail: z.string().max(2_000).optional() });

export const probeReportSchema = z.object({
  uid: z.number(),
  gid: z.number(),
  status: z.record(z.string().max(32), z.string().max(64)),
  rootWrite: attempt,
  rootMount: z.string().max(16).optional(),
  dockerSockets: z.array(z.string().max(500)).max(10),
  dnsSystem: attempt,
  dnsEmbedded: attempt,
  hostGateway: attempt,
  internalGateway: attempt.extend({ address: z.string().max(64).optional() }),
  ipv6: z.object({ disabled: z.string().max(8).optional(), addresses: z.array(z.string().max(64)).max(64), route: attempt }),
  proxy: z.object({ notAllowlisted: attempt, otherPort: attempt, ipLiteral: attempt, plainHttp: attempt }),
  limits: z.object({ pidsMax: z.string().max(32).optional(), memoryMax: z.string().max(32).optional(), cpuMax: z.string().max(64).optional() }),
  policyWrites: z.array(attempt.extend({ path: z.string().max(500) })).max(50),
  env: z.array(z.string().max(200)).max(1_000),
}) satisfies z.ZodType<ProbeReport>;

export interface SelftestContext {
  hostGateway: string;
  hostPort: number;
  /** The internal network's gateway as the engine reports it (undefined if it could not be read). */
  internalGateway?: string;
  pidsLimit: number;
  memoryBytes: number;
  /** CPUs the plan allows (nano CPUs / 1e9). */
  cpus: number;
  /** Variable names the agent may see: the plan's, and those the image itself sets. */
  allowedEnv: ReadonlySet<string>;
  /** A variable set in perstack's own environment but never named: it must not reach the agent. */
  canary: string;
  /** The proxy's decision for a request, by "host:port" (from its access log). */
  proxyReasons: ReadonlyMap<string, string>;
  targets: { notAllowlisted: string; allowlisted: string; ipLiteral: string; externalName: string };
  /** What the host found in the workspace after the run: undefined when no attempt reached it. */
  policyDamage?: string;
  /** What the host did with the agent's attempts (kept versions), for the row's "seen". */
  policyNotes: string[];
  /** Lookups slower than this fail the check: tools must not hang on DNS. */
  dnsBudgetMs: number;
}

const describeAttempt = (a: { ok: boolean; error?: string | undefined; ms: number; detail?: string | undefined }) =>
  a.ok ? `succeeded${a.detail ? ` (${a.detail})` : ""} in ${a.ms} ms` : `failed: ${a.error ?? "error"} in ${a.ms} ms`;

export function evaluate(report: ProbeReport, context: SelftestContext): Check[] {
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, expected: string, seen: string) => checks.push({ name, ok, expected, seen });

  add("non-root user", report.uid !== 0 && report.gid !== 0, "uid and gid not 0", `uid ${report.uid}, gid ${report.gid}`);

  const caps = ["CapEff", "CapPrm", "CapBnd", "CapAmb"].map((k) => [k, report.status[k]] as const);
  const noCaps = caps.every(([, v]) => v !== undefined && /^0+$/.test(v)) && report.status.NoNewPrivs === "1";
  add("no capabilities", noCaps, "CapEff, CapPrm, CapBnd, CapAmb all 0; NoNewPrivs 1", [...caps.map(([k, v]) => `${k} ${v ?? "?"}`), `NoNewPrivs ${report.status.NoNewPrivs ?? "?"}`].join(", "));

  add(
    "read-only root filesystem",
    !report.rootWrite.ok && report.rootMount === "ro",
    "writing /etc fails; / mounted ro",
    `write ${report.rootWrite.ok ? "succeeded" : `failed (${report.rootWrite.error})`}; / mounted ${report.rootMount ?? "?"}`,
  );

  add("no Docker socket", report.dockerSockets.length === 0, "no docker.sock, no DOCKER_HOST", report.dockerSockets.length === 0 ? "none" : report.dockerSockets.join(", "));

  add(
    "DNS through resolv.conf",
    !report.dnsSystem.ok && report.dnsSystem.ms < context.dnsBudgetMs,
    `${context.targets.externalName} does not resolve, and the lookup fails within ${context.dnsBudgetMs} ms`,
    describeAttempt(report.dnsSystem),
  );
  add("DNS through Docker's resolver 127.0.0.11", !report.dnsEmbedded.ok, `${context.targets.externalName} does not resolve`, describeAttempt(report.dnsEmbedded));

  add(
    `no route to the host through docker0 (${context.hostGateway})`,
    !report.hostGateway.ok,
    `connecting to ${context.hostGateway}:${context.hostPort}, where the host listens, fails`,
    describeAttempt(report.hostGateway),
  );
  const gateway = report.internalGateway.address;
  const gatewayMatches = context.internalGateway === undefined || gateway === context.internalGateway;
  add(
    `no route to the host through the internal network's gateway (${context.internalGateway ?? gateway ?? "?"})`,
    !report.internalGateway.ok && gatewayMatches,
    `connecting to ${context.internalGateway ?? "the gateway"}:${context.hostPort} fails`,
    `${gatewayMatches ? "" : `probed ${gateway ?? "nothing"}, but the gateway is ${context.internalGateway}; `}${describeAttempt(report.internalGateway)}`,
  );
  add(
    "no IPv6",
    report.ipv6.disabled === "1" && report.ipv6.addresses.length === 0 && !report.ipv6.route.ok,
    "disable_ipv6 = 1, no IPv6 address, no IPv6 route",
    `disable_ipv6 = ${report.ipv6.disabled ?? "?"}, addresses: ${report.ipv6.addresses.join(" ") || "none"}, route: ${report.ipv6.route.ok ? "exists" : `none (${report.ipv6.route.error})`}`,
  );

  const proxyRow = (name: string, a: ProbeReport["proxy"]["notAllowlisted"], target: string, reason: string) => {
    const logged = context.proxyReasons.get(target);
    add(
      name,
      a.ok && a.detail === "403" && logged === reason,
      `403, logged as ${reason}`,
      a.ok ? `${a.detail ?? "?"}${logged ? `, logged as ${logged}` : ", not in the proxy's log"}` : `no answer: ${a.error}`,
    );
  };
  const t = context.targets;
  proxyRow("proxy refuses a name not allowlisted", report.proxy.notAllowlisted, `${t.notAllowlisted}:443`, "not-allowlisted");
  proxyRow("proxy refuses another port of an allowlisted name", report.proxy.otherPort, `${t.allowlisted}:8443`, "port-not-allowed");
  proxyRow("proxy refuses an IP literal", report.proxy.ipLiteral, `${t.ipLiteral}:443`, "ip-literal");
  proxyRow("proxy refuses plain HTTP", report.proxy.plainHttp, `${t.allowlisted}:80`, "plain-http-not-allowed");

  add("pid limit", report.limits.pidsMax === String(context.pidsLimit), `pids.max ${context.pidsLimit}`, report.limits.pidsMax ?? "not readable");
  add("memory limit", report.limits.memoryMax === String(context.memoryBytes), `${context.memoryBytes} bytes`, report.limits.memoryMax ?? "not readable");
  const [quota, period] = (report.limits.cpuMax ?? "").split(" ").map(Number);
  const cpus = quota !== undefined && period ? quota / period : undefined;
  add("CPU limit", cpus !== undefined && Math.abs(cpus - context.cpus) < 0.01, `${context.cpus} CPUs`, report.limits.cpuMax ? `${report.limits.cpuMax} (${cpus ?? "?"} CPUs)` : "not readable");

  const attempts = report.policyWrites.map((w) => `${w.path}: ${w.ok ? "written in the sandbox" : `refused (${w.error})`}`);
  add(
    "policy files and perstack/ are read-only",
    context.policyDamage === undefined && report.policyWrites.length > 0,
    "the agent's writes never reach the workspace's perstack.toml, .env files or perstack/",
    context.policyDamage ?? `${attempts.join("; ")}; workspace unchanged${context.policyNotes.length ? `; ${context.policyNotes.join("; ")}` : ""}`,
  );

  const extra = report.env.filter((name) => !context.allowedEnv.has(name));
  const canary = report.env.includes(context.canary);
  add(
    "unnamed host variables are absent",
    extra.length === 0 && !canary,
    "only the variables the plan names (and the image's own)",
    canary ? `${context.canary} reached the agent${extra.length ? `; also ${extra.join(", ")}` : ""}` : extra.length ? `unexpected: ${extra.join(", ")}` : `${report.env.length} variables, all named`,
  );
  return checks;
}

/** The probe's line in the agent's stdout, validated; a message saying what is wrong otherwise. */
export function readProbeReport(stdout: string, key: string): { report: ProbeReport } | { problem: string } {
  const line = stdout.split("\n").find((l) => l.startsWith(`{"${key}":`));
  if (!line) return { problem: `the probe printed no report (stdout: ${JSON.stringify(stdout.slice(0, 300))})` };
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { problem: "the probe's report is not JSON" };
  }
  const parsed = probeReportSchema.safeParse((json as Record<string, unknown>)[key]);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { problem: `the probe's report is malformed at ${issue?.path.join(".") || "(root)"}` };
  }
  return { report: parsed.data as ProbeReport };
}
