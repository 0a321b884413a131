// PURE: (resolved config, expert, runtime, options) -> SandboxPlan. Nothing here touches Docker, the network or
// the process environment; values of secrets never enter the plan, only their names.
import { NO_IPV6_SYSCTLS } from "./container-settings.js";
import { createHash } from "node:crypto";
import { relative, isAbsolute, join } from "node:path";
import type { LoadedConfig } from "../config/load.js";
import type { EngineExpert, EngineSkill, EngineStart } from "../engine/engine-input.js";
import { findExpert, reachableExperts, type RuntimeChoice } from "../config/resolve.js";
import { DEFAULTS, NPM_PACKAGE_SPEC, type McpStdioSkillConfig, type ProviderConfig, type SkillConfig } from "../config/schema.js";
import { InvalidOptionError, UnsupportedConfigError } from "../errors.js";
import { withEnvSettings } from "../engine/provider-env.js";
import { modelVendor, vendorName } from "../runtimes/model-vendor.js";
import type { HomeFile, InstalledSkill, RuntimeAdapter, RuntimeInvocation } from "../runtimes/types.js";
import { explicitUpstream, mergeAllowlist, skillDomains, type AllowlistSource, type ExplicitUpstream } from "./allowlist.js";
import { packagePath } from "../package-root.js";
import type { PolicyPaths } from "./policy-files.js";
import { mcpServerName } from "./server-name.js";
import { gatewayImage } from "./gateway-image.js";
import { planGateway, gatewayServes, type GatewayBudgets, type GatewayPlan } from "./gateway-plan.js";
import { gatewayContextFiles } from "../runtimes/engine-files.js";
import type { ContextFile } from "./context-file.js";
import { readTemplateFile, render } from "./templates.js";

export type BaseImageRole = "debian" | "node";

export interface BaseImage {
  role: BaseImageRole;
  ref: string;
  /** Local image id when the image is present; keyed into tags so a rebuilt base invalidates them. */
  id?: string;
}

export interface ResourceLimits {
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  /** Wall-clock limit for the agent: some CLIs retry an unreachable API forever. */
  maxDurationMs: number;
  /** Bytes of output (stdout, stderr, proxy decisions) the collector records before it stops the run. */
  maxOutputBytes: number;
  /** Copy mode: the most the workspace may hold to be copied in, and the agent's copy to be copied back. */
  maxCopyBytes: number;
}

export const DEFAULT_LIMITS: ResourceLimits = {
  memoryBytes: 4 * 1024 ** 3,
  nanoCpus: 2e9,
  pidsLimit: 512,
  maxDurationMs: 60 * 60 * 1000,
  maxOutputBytes: 1024 ** 3,
  maxCopyBytes: 8 * 1024 ** 3,
};

export interface PlanInput {
  loaded: LoadedConfig;
  expertKey: string;
  runtime: RuntimeChoice;
  adapter: RuntimeAdapter;
  query: string;
  /** --model; beats the config's model. */
  model?: string;
  /** The runtime's conventional base-URL variable from the host (e.g. ANTHROPIC_BASE_URL), if set. */
  baseUrlFromEnv?: string;
  /** The values of the provider's setting variables (AWS_REGION, GOOGLE_VERTEX_PROJECT, ...; see PROVIDER_SETTING_ENV). */
  providerEnv?: Record<string, string>;
  /** --max-cost / --max-tokens: enforced by the provider gateway. */
  budgets?: GatewayBudgets;
  /** --pricing: the price table's text (validated at the edge), used by the gateway instead of the shipped one. */
  pricingTable?: string;
  /**
   * perstack serve: the tenant's config is untrusted, so the provider gateway connects only to public addresses
   * (checked at connect time), except the host[:port] entries in `allow` (--allow-private-upstream). Absent (the
   * CLI's runs): a local user may point baseUrl at a model server on localhost on purpose.
   */
  upstreamPolicy?: { allow: string[] };
  /** The gateway's program files for its image (default: read from dist/ by runtimes/engine-files.ts). */
  gatewayProgram?: ContextFile[];
  /** Absolute host path of the workspace the agent works on at /workspace. */
  workspace: string;
  /**
   * bind: the workspace is mounted read-write (the agent's uid can write it). copy: it is copied into a volume and
   * the agent's changes are copied back after the run (root-owned or otherwise unwritable workspaces). Default bind.
   */
  workspaceMode?: WorkspaceMode;
  /** Paths the agent must not change (policy-files.ts); default none. */
  policy?: PolicyPaths;
  /** Absolute host path of the perstack/ directory the collector writes. */
  perstackDir: string;
  /** Names given with --env. */
  envNames: string[];
  baseImages: Record<BaseImageRole, BaseImage>;
  /** PEM text of extra CA certificates trusted by image builds (empty: none). */
  caBundle: string;
  limits: ResourceLimits;
  user: { uid: number; gid: number };
  jobId: string;
  runId: string;
  /**
   * How the run begins when it continues an existing job (built-in engine only): default a fresh query, 0 steps
   * before.
   */
  session?: { start: EngineStart; stepsBefore: number };
}

export type { ContextFile } from "./context-file.js";

export interface ImagePlan {
  role: "proxy" | "agent" | "gateway";
  repository: string;
  tag: string;
  /** repository:tag */
  ref: string;
  baseImage: string;
  dockerfile: string;
  contextFiles: ContextFile[];
}

export interface NetworkPlan {
  role: "internal" | "egress";
  name: string;
  /** Docker `internal` network: no route out, no external DNS. */
  internal: boolean;
  /** Always false, said explicitly rather than left to the daemon's defaults. */
  enableIPv6: false;
  /** Bridge driver options. */
  options: Record<string, string>;
}

/**
 * An `internal` network alone still gives containers a default route to the bridge's gateway address, which is
 * the Docker host itself, so every host service listening on 0.0.0.0 would be reachable without the proxy.
 * Leaving the bridge without an address removes that path; containers on the network still reach each other.
 */
export const INTERNAL_NETWORK_OPTIONS = { "com.docker.network.bridge.inhibit_ipv4": "true" } as const;

export interface ProxyPlan {
  containerName: string;
  image: string;
  /** Name the agent reaches the proxy by, on the internal network. */
  alias: string;
  port: number;
  allowlist: string[];
  allowlistSources: AllowlistSource[];
  upstreams: ExplicitUpstream[];
  squidConf: string;
  /** host.docker.internal resolves to the Docker host, so a local model server can be the configured upstream. */
  extraHosts: string[];
}

export type EnvEntry =
  /** Read from the host at run time: the first of `from` that is set. */
  | { name: string; source: "host"; from: string[]; reason: string; optional?: boolean }
  /** Value from perstack.toml that may be secret (provider headers): supplied at run time, never in the plan. */
  | { name: string; source: "config"; reason: string }
  /** The run's gateway token, in the provider's key variable: made at run time, worthless outside the run. */
  | { name: string; source: "token"; reason: string }
  | { name: string; source: "fixed"; value: string; reason: string };

export interface MountPlan {
  source: string;
  target: string;
  readOnly: boolean;
}

export type WorkspaceMode = "bind" | "copy";

export type WorkspacePlan =
  | { mode: "bind"; source: string; protected: PolicyPaths }
  /** Copied into the named volume before the run, and back after it, leaving out `exclude` (relative paths). */
  | { mode: "copy"; source: string; volumeName: string; exclude: string[]; protected: PolicyPaths };

export interface AgentPlan {
  containerName: string;
  image: string;
  command: string[];
  env: EnvEntry[];
  user: string;
  workdir: string;
  /** Bind mounts; in copy mode the workspace is not one of them. */
  mounts: MountPlan[];
  workspace: WorkspacePlan;
  tmpfs: Record<string, string>;
  limits: ResourceLimits;
  /**
   * The embedded resolver's upstream (HostConfig.Dns): a loopback address where nothing listens, so that Docker's
   * 127.0.0.11 forwards external queries from the container's own namespace and they fail there, even on engines
   * with CVE-2024-29018 (which forward from the host's namespace when the host's resolver is on loopback).
   */
  dns: string[];
  sysctls: Record<string, string>;
  /** Mounted over /etc/resolv.conf: a resolver that refuses at once, so external names never resolve. */
  resolvConf: string;
  /** Copied into HOME at start (mounted read-only at /etc/perstack/home). */
  homeFiles: HomeFile[];
}

export interface SandboxPlan {
  version: 1;
  jobId: string;
  runId: string;
  expert: { key: string; name: string; version: string };
  runtime: { name: string; source: RuntimeChoice["source"]; cliPackage: string; cliVersion: string };
  model: string;
  provider: ProviderConfig["providerName"];
  query: string;
  images: ImagePlan[];
  networks: NetworkPlan[];
  proxy: ProxyPlan;
  /** Absent when the gateway does not serve the run's provider (cursor; providers not served yet). */
  gateway?: GatewayPlan;
  agent: AgentPlan;
  labels: Record<string, string>;
  warnings: string[];
}

export { NO_IPV6_SYSCTLS, PROXY_TMPFS } from "./container-settings.js";
export const PROXY_PORT = 3128;
/** Where the runtime's HOME files are mounted; the agent image's entrypoint copies them into HOME. */
export const AGENT_HOME_FILES = "/etc/perstack/home";
export const PROXY_ALIAS = "perstack-proxy";
/** The agent's resolver and the embedded resolver's upstream: nothing listens there inside the container. */
export const AGENT_DNS = ["127.0.0.1"];
const SKILLS_ROOT = "/opt/perstack/skills";

export function buildSandboxPlan(input: PlanInput): SandboxPlan {
  const { loaded, adapter } = input;
  const expert = findExpert(loaded, input.expertKey);
  const experts = reachableExperts(loaded, input.expertKey);
  const fileProvider: ProviderConfig = loaded.file.provider ?? { providerName: adapter.defaultProvider };
  if (!(adapter.providers as readonly string[]).includes(fileProvider.providerName)) {
    throw new UnsupportedConfigError(
      `provider.providerName "${fileProvider.providerName}" is not supported by runtime ${adapter.name}; it supports ${adapter.providers.join(", ")} (remove [provider] to use its default, ${adapter.defaultProvider})`,
    );
  }
  // The region, project, location or Azure resource a variable gives are settled here, on the host: the gateway's
  // upstream and the engine's paths depend on them, and the sandbox then needs none of those variables.
  const provider = adapter.ownService ? fileProvider : withEnvSettings(fileProvider, input.providerEnv ?? {});
  const warnings: string[] = [...loaded.warnings, ...experts.flatMap((e) => loaded.expertWarnings[e.key] ?? [])];
  const model = input.model ?? loaded.file.model ?? adapter.defaultModel;
  const vendor = modelVendor(model);
  if (vendor && !adapter.modelVendors.includes(vendor)) {
    const where = input.model ? "--model" : "model in perstack.toml";
    throw new UnsupportedConfigError(
      `${where} "${model}" is ${/^[AEIOU]/.test(vendorName(vendor)) ? "an" : "a"} ${vendorName(vendor)} model, but runtime ${adapter.name} runs ${adapter.modelVendors.map(vendorName).join("/")} models (e.g. ${adapter.defaultModel}); choose another model or runtime`,
    );
  }
  const configuredBaseUrl = adapter.ownService ? undefined : (provider.setting?.baseUrl ?? input.baseUrlFromEnv);
  const short = input.runId.slice(0, 12);
  const gatewayImagePlan = gatewayServes(adapter, provider)
    ? gatewayImage(input.baseImages.node, input.caBundle, input.gatewayProgram ?? gatewayContextFiles())
    : undefined;
  const decision = gatewayImagePlan
    ? planGateway({ adapter, provider, configuredBaseUrl, model, ...(input.budgets ? { budgets: input.budgets } : {}), ...(input.pricingTable !== undefined ? { pricingTable: input.pricingTable } : {}), image: gatewayImagePlan.ref, short, ...(input.upstreamPolicy ? { upstreamPolicy: input.upstreamPolicy } : {}) })
    : undefined;
  if (adapter.ownService) {
    warnings.push(`runtime ${adapter.name} talks to its vendor's own service, so its key stays inside the sandbox (the provider gateway cannot hold it)`);
  }
  // Through the gateway, the runtime's one model endpoint is the gateway, reached through squid as its upstream.
  const baseUrl = decision?.agentBaseUrl ?? configuredBaseUrl;

  const { installs: cliInstalls, skills } = adapter.runsExperts
    ? { installs: [], skills: [] }
    : planSkills(expert.key, expert.config.skills ?? {}, warnings, adapter.name);
  const engine = adapter.runsExperts ? planEngineExperts(experts) : undefined;
  const installs = engine?.installs ?? cliInstalls;
  const invocation: RuntimeInvocation = {
    expert: {
      key: expert.key,
      name: expert.key,
      version: expert.config.version,
      instruction: expert.config.instruction,
      ...(expert.config.description ? { description: expert.config.description } : {}),
    },
    delegates: (expert.config.delegates ?? []).map((key) => {
      const description = findExpert(loaded, key).config.description;
      return description ? { key, description } : { key };
    }),
    skills,
    model,
    provider,
    query: input.query,
    ...(baseUrl ? { baseUrl } : {}),
    maxSteps: loaded.file.maxSteps ?? DEFAULTS.maxSteps,
    maxRetries: loaded.file.maxRetries ?? DEFAULTS.maxRetries,
    timeout: loaded.file.timeout ?? DEFAULTS.timeout,
    ...(loaded.file.reasoningBudget !== undefined ? { reasoningBudget: loaded.file.reasoningBudget } : {}),
    jobId: input.jobId,
    runId: input.runId,
    experts: engine?.experts ?? [],
    start: input.session?.start ?? { kind: "query", query: input.query },
    stepsBefore: input.session?.stepsBefore ?? 0,
  };

  // Allowlist: skills of the expert and every reachable delegate, the provider's hosts, the runtime's hosts.
  warnings.push(...(adapter.warnings?.(invocation) ?? []));

  // A configured baseUrl is the one explicit upstream: reachable on its own port even on a private address, and
  // it replaces the provider's public API hosts.
  const upstream = explicitUpstream(baseUrl);
  const upstreams = upstream ? [upstream] : [];
  const sources: AllowlistSource[] = skillDomains(experts);
  if (!upstream) {
    for (const host of adapter.apiHosts(provider)) sources.push({ pattern: host, origin: `provider ${provider.providerName}` });
  }
  const allowlist = mergeAllowlist(sources);

  const images = [
    proxyImage(input),
    agentImage(input, installs),
    ...(gatewayImagePlan ? [gatewayImagePlan] : []),
  ];
  const proxyRef = images[0]!.ref;
  const agentRef = images[1]!.ref;

  const proxyName = `perstack-${short}-proxy`;
  const proxyUrl = `http://${PROXY_ALIAS}:${PROXY_PORT}`;
  const squidConf = render("squid/squid.conf.hbs", {
    runId: input.runId,
    allowlist,
    squidDomains: allowlist.map((p) => (p.startsWith("*.") ? p.slice(1) : p)),
    upstreams,
  });

  const env = planEnv(input, experts, provider, adapter, invocation, proxyUrl, decision?.tokenVariables);
  const workspace = planWorkspace(input, short);

  return {
    version: 1,
    jobId: input.jobId,
    runId: input.runId,
    expert: { key: expert.key, name: expert.key, version: expert.config.version },
    runtime: {
      name: input.runtime.name,
      source: input.runtime.source,
      cliPackage: adapter.cliPackage,
      cliVersion: adapter.cliVersion,
    },
    model,
    provider: provider.providerName,
    query: input.query,
    images,
    networks: [
      { role: "internal", name: `perstack-${short}-internal`, internal: true, enableIPv6: false, options: { ...INTERNAL_NETWORK_OPTIONS } },
      { role: "egress", name: `perstack-${short}-egress`, internal: false, enableIPv6: false, options: {} },
    ],
    ...(decision ? { gateway: decision.gateway } : {}),
    proxy: {
      containerName: proxyName,
      image: proxyRef,
      alias: PROXY_ALIAS,
      port: PROXY_PORT,
      allowlist,
      allowlistSources: sources,
      upstreams,
      squidConf,
      extraHosts: ["host.docker.internal:host-gateway"],
    },
    agent: {
      containerName: `perstack-${short}-agent`,
      image: agentRef,
      command: adapter.command(invocation),
      env,
      user: `${input.user.uid}:${input.user.gid}`,
      workdir: "/workspace",
      mounts: planMounts(input, workspace),
      workspace,
      tmpfs: {
        "/tmp": "rw,exec,nosuid,nodev,size=1g,mode=1777",
        "/home/agent": `rw,exec,nosuid,nodev,size=1g,mode=0700,uid=${input.user.uid},gid=${input.user.gid}`,
      },
      limits: input.limits,
      dns: [...AGENT_DNS],
      sysctls: { ...NO_IPV6_SYSCTLS },
      resolvConf: packagePath("templates/files/resolv.conf"),
      homeFiles: adapter.homeFiles(invocation),
    },
    labels: {
      "perstack.managed": "true",
      "perstack.job": input.jobId,
      "perstack.run": input.runId,
    },
    warnings,
  };
}

interface SkillInstall {
  name: string;
  dir: string;
  packageSpec: string;
  packageName: string;
}

function planSkills(
  expertKey: string,
  configured: NonNullable<ReturnType<typeof findExpert>["config"]["skills"]>,
  warnings: string[],
  runtimeName: string,
): { installs: SkillInstall[]; skills: InstalledSkill[] } {
  const installs: SkillInstall[] = [];
  const skills: InstalledSkill[] = [];
  const servers = new Set<string>();
  for (const [configuredName, skill] of Object.entries(configured)) {
    const where = `experts."${expertKey}".skills."${configuredName}"`;
    const name = mcpServerName(configuredName, servers);
    if (skill.type === "interactiveSkill") {
      warnings.push(`${where}: interactive skills are not supported by runtime ${runtimeName}; the run proceeds without it`);
      continue;
    }
    const notes = {
      ...(skill.description ? { description: skill.description } : {}),
      ...(skill.rule ? { rule: skill.rule } : {}),
      ...(skill.pick ? { pick: skill.pick } : {}),
      ...(skill.omit ? { omit: skill.omit } : {}),
    };
    if (skill.pick) {
      warnings.push(`${where}.pick: runtime ${runtimeName} cannot restrict a server to picked tools; use omit to hide tools`);
    }
    if (skill.type === "mcpSseSkill") {
      servers.add(name);
      skills.push({ name, command: "", args: [], envNames: [], url: skill.endpoint, ...notes });
      continue;
    }
    const envNames = skill.requiredEnv ?? [];
    const launch = stdioLaunch(where, skill);
    if (launch.packageSpec && packageNameOf(launch.packageSpec) === BASE_SKILL_PACKAGE) {
      // The CLIs bring their own file and shell tools; Perstack's base skill belongs to the built-in runtime.
      warnings.push(`${where}: ${BASE_SKILL_PACKAGE} is the built-in perstack runtime's skill; runtime ${runtimeName} uses its own file and shell tools instead`);
      continue;
    }
    servers.add(name);
    if (launch.packageSpec) {
      const dir = skillInstallDir(launch.packageSpec);
      if (!installs.some((i) => i.packageSpec === launch.packageSpec)) {
        installs.push({ name: launch.packageSpec, dir, packageSpec: launch.packageSpec, packageName: packageNameOf(launch.packageSpec) });
      }
      skills.push({ name, command: `${SKILLS_ROOT}/${dir}/entry`, args: launch.args, envNames, ...notes });
    } else {
      skills.push({ name, command: skill.command, args: launch.args, envNames, ...notes });
    }
  }
  return { installs, skills };
}

/** How a stdio skill starts: an npm package to install (with the server's arguments), else a program as written. */
function stdioLaunch(where: string, skill: McpStdioSkillConfig): { packageSpec?: string; args: string[] } {
  const program = skill.command.split("/").pop() ?? skill.command;
  if (program === "uvx" || program.startsWith("python") || program === "uv") {
    throw new UnsupportedConfigError(
      `${where}.command: "${skill.command}" skills are not available yet in sandboxed runs; use an npm package (command = "npx")`,
    );
  }
  if (skill.packageName !== undefined) return { packageSpec: skill.packageName, args: [] };
  if (program === "npx") {
    // npx's own flags come before the package; what follows the package belongs to the server.
    const rest = (skill.args ?? []).slice();
    while (rest[0]?.startsWith("-")) rest.shift();
    const packageSpec = rest.shift();
    if (!packageSpec || !NPM_PACKAGE_SPEC.test(packageSpec)) {
      throw new UnsupportedConfigError(`${where}.args: cannot find the npm package to run; put it first, e.g. ["-y", "@scope/server"]`);
    }
    return { packageSpec, args: rest };
  }
  // A program already in the image (node, a script in /workspace): run as written.
  return { args: skill.args ?? [] };
}

function packageNameOf(packageSpec: string): string {
  return packageSpec.replace(/^(@?[^@]+)@.*$/, "$1");
}

/** Perstack's base skill; the engine serves it itself. */
const BASE_SKILL_PACKAGE = "@perstack/base";

/** A skill directory per package spec: stable across runs and experts, and safe in a Dockerfile path. */
export function skillInstallDir(packageSpec: string): string {
  const readable = packageSpec.replace(/^@/, "").replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 48);
  return `${readable}-${createHash("sha256").update(packageSpec).digest("hex").slice(0, 8)}`;
}

/**
 * The built-in engine runs every reachable expert itself: each gets its skills as the engine starts them, and the
 * image gets every npm skill of them all, installed once per package spec.
 */
function planEngineExperts(experts: ReturnType<typeof reachableExperts>): { experts: EngineExpert[]; installs: SkillInstall[] } {
  const installs = new Map<string, SkillInstall>();
  const out = experts.map((expert): EngineExpert => {
    const configured = Object.entries(expert.config.skills ?? {});
    const skills: EngineSkill[] =
      configured.length === 0
        ? [{ type: "base", name: BASE_SKILL_PACKAGE }]
        : configured.map(([name, skill]) => engineSkill(`experts."${expert.key}".skills."${name}"`, name, skill, installs));
    return {
      key: expert.key,
      name: expert.key,
      version: expert.config.version,
      ...(expert.config.description ? { description: expert.config.description } : {}),
      instruction: expert.config.instruction,
      delegates: expert.config.delegates ?? [],
      skills,
    };
  });
  return { experts: out, installs: [...installs.values()] };
}

function engineSkill(where: string, name: string, skill: SkillConfig, installs: Map<string, SkillInstall>): EngineSkill {
  if (skill.type === "interactiveSkill") {
    return {
      type: "interactive",
      name,
      ...(skill.description ? { description: skill.description } : {}),
      ...(skill.rule ? { rule: skill.rule } : {}),
      tools: Object.entries(skill.tools).map(([tool, spec]) => ({
        name: tool,
        ...(spec.description ? { description: spec.description } : {}),
        inputSchema: JSON.parse(spec.inputJsonSchema) as Record<string, unknown>,
      })),
    };
  }
  const filters = {
    ...(skill.description ? { description: skill.description } : {}),
    ...(skill.rule ? { rule: skill.rule } : {}),
    ...(skill.pick ? { pick: skill.pick } : {}),
    ...(skill.omit ? { omit: skill.omit } : {}),
  };
  if (skill.type === "mcpSseSkill") return { type: "mcpSse", name, url: skill.endpoint, ...filters };
  const launch = stdioLaunch(where, skill);
  if (!launch.packageSpec) {
    return { type: "mcpStdio", name, command: skill.command, args: launch.args, envNames: skill.requiredEnv ?? [], ...filters };
  }
  const packageName = packageNameOf(launch.packageSpec);
  if (packageName === BASE_SKILL_PACKAGE) return { type: "base", name, ...filters };
  const dir = skillInstallDir(launch.packageSpec);
  if (!installs.has(launch.packageSpec)) installs.set(launch.packageSpec, { name: launch.packageSpec, dir, packageSpec: launch.packageSpec, packageName });
  return { type: "mcpStdio", name, command: `${SKILLS_ROOT}/${dir}/entry`, args: launch.args, envNames: skill.requiredEnv ?? [], ...filters };
}

function planEnv(
  input: PlanInput,
  experts: ReturnType<typeof reachableExperts>,
  provider: ProviderConfig,
  adapter: RuntimeAdapter,
  invocation: RuntimeInvocation,
  proxyUrl: string,
  tokenVariables?: string[],
): EnvEntry[] {
  const entries = new Map<string, EnvEntry>();
  const fromHost = (name: string, reason: string, from: string[] = [name], optional = false) => {
    const known = entries.get(name);
    // Named again as required (a skill's requiredEnv, --env), an optional provider variable becomes required.
    const upgrade = known?.source === "host" && known.optional === true && !optional;
    if (known && !upgrade) return;
    const sources = known?.source === "host" ? known.from : from;
    entries.set(name, { name, source: "host", from: sources, reason, ...(optional ? { optional } : {}) });
  };
  if (tokenVariables) {
    for (const name of tokenVariables) {
      entries.set(name, { name, source: "token", reason: `the run's token for the provider gateway (the ${provider.providerName} credentials stay outside)` });
    }
  } else {
    for (const key of adapter.keyEnv(provider)) {
      fromHost(key.name, `provider ${provider.providerName} ${key.optional ? "setting" : "key"}`, key.from, key.optional);
    }
  }
  for (const expert of experts) {
    for (const [skillName, skill] of Object.entries(expert.config.skills ?? {})) {
      if (skill.type !== "mcpStdioSkill") continue;
      for (const name of skill.requiredEnv ?? []) fromHost(name, `experts."${expert.key}".skills."${skillName}".requiredEnv`);
    }
  }
  for (const name of input.envNames) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new InvalidOptionError(`--env "${name}": not a variable name; pass a NAME (its value is read from your environment)`);
    }
    fromHost(name, "--env");
  }
  // Provider headers may carry tokens: through the gateway they are its to add, and never reach the agent.
  for (const name of tokenVariables ? [] : Object.keys(adapter.configEnv(provider))) {
    if (!entries.has(name)) entries.set(name, { name, source: "config", reason: "provider.setting.headers" });
  }
  const fixed: Record<string, string> = {
    ...adapter.fixedEnv(invocation),
    HOME: "/home/agent",
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
  };
  for (const [name, value] of Object.entries(fixed)) {
    if (entries.has(name)) {
      throw new InvalidOptionError(`--env ${name}: the sandbox sets this variable itself; remove it`);
    }
    entries.set(name, { name, source: "fixed", value, reason: name.toLowerCase().endsWith("_proxy") ? "proxy" : "runtime" });
  }
  return [...entries.values()];
}

function planWorkspace(input: PlanInput, short: string): WorkspacePlan {
  if (relative(input.workspace, input.perstackDir) === "") {
    throw new InvalidOptionError(`--workspace ${input.workspace}: is the perstack/ directory itself; choose the project directory`);
  }
  const policy = input.policy ?? { files: [], trees: [] };
  if ((input.workspaceMode ?? "bind") === "bind") return { mode: "bind", source: input.workspace, protected: policy };
  // The collector's records stay out of the copy: they are not the agent's to read back or change, and can be large.
  return { mode: "copy", source: input.workspace, volumeName: `perstack-${short}-workspace`, exclude: [...policy.trees], protected: policy };
}

function planMounts(input: PlanInput, workspace: WorkspacePlan): MountPlan[] {
  if (workspace.mode === "copy") return [];
  const mounts: MountPlan[] = [{ source: input.workspace, target: "/workspace", readOnly: false }];
  // The collector's output must not be writable by the agent even when it lives inside the workspace.
  const rel = relative(input.workspace, input.perstackDir);
  if (!rel.startsWith("..") && !isAbsolute(rel)) {
    mounts.push({ source: input.perstackDir, target: join("/workspace", rel), readOnly: true });
  }
  return mounts;
}

function hashInputs(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 16);
}

function proxyImage(input: PlanInput): ImagePlan {
  const base = input.baseImages.debian;
  const dockerfile = render("squid/Dockerfile.hbs", { baseImage: base.ref });
  const contextFiles = [{ path: "entrypoint.sh", content: readTemplateFile("squid/entrypoint.sh") }];
  const tag = hashInputs({ dockerfile, contextFiles, base: base.id ?? base.ref });
  return { role: "proxy", repository: "perstack/proxy", tag, ref: `perstack/proxy:${tag}`, baseImage: base.ref, dockerfile, contextFiles };
}

function agentImage(input: PlanInput, installs: SkillInstall[]): ImagePlan {
  const base = input.baseImages.node;
  const adapter = input.adapter;
  const hasCaBundle = input.caBundle.trim().length > 0;
  const dockerfile = render(
    "templates/agent.Dockerfile.hbs",
    {
      baseImage: base.ref,
      runtime: adapter.name,
      hasCaBundle,
      skills: installs,
      cliSpec: `${adapter.cliPackage}@${adapter.cliVersion}`,
      ...adapter.dockerfileValues,
    },
    { runtime: readTemplateFile(`templates/runtimes/${adapter.dockerfilePartial}`) },
  );
  const contextFiles: ContextFile[] = [
    { path: "link-skill-bin.mjs", content: readTemplateFile("templates/files/link-skill-bin.mjs") },
    { path: "agent-entrypoint.sh", content: readTemplateFile("templates/files/agent-entrypoint.sh") },
  ];
  if (hasCaBundle) contextFiles.push({ path: "extra-ca.crt", content: input.caBundle });
  contextFiles.push(...(adapter.contextFiles?.() ?? []));
  const repository = `perstack/agent-${adapter.name}`;
  const tag = hashInputs({ dockerfile, contextFiles, base: base.id ?? base.ref });
  return { role: "agent", repository, tag, ref: `${repository}:${tag}`, baseImage: base.ref, dockerfile, contextFiles };
}
