// The second renderer of a SandboxPlan: files a person can read and run by hand with docker-compose. Secrets
// appear only as ${NAME} references; the query is ${PERSTACK_QUERY}, supplied when the files are run.
import { posix } from "node:path";
import { GOOGLE_CREDENTIALS_ENV } from "../gateway/gateway-config.js";
import { GATEWAY_CONFIG_DIR } from "./gateway-plan.js";
import { AGENT_HOME_FILES, PROXY_TMPFS, type SandboxPlan } from "./sandbox-plan.js";

/** What the person running exported files sets to any random string: the agent's token and the gateway's. */
const GATEWAY_TOKEN_VARIABLE = "PERSTACK_GATEWAY_TOKEN";
import { readTemplateFile, render, yamlString } from "./templates.js";

/** Stands in for the query while planning an export, and becomes ${PERSTACK_QUERY} in compose.yaml. */
export const QUERY_PLACEHOLDER = "\u0000perstack-query\u0000";
const INTERNAL_SUBNET = "172.30.253.0/24";
const PROXY_ADDRESS = "172.30.253.2";

export interface ExportFile {
  path: string;
  content: string;
  mode?: number;
}

export function renderExport(plan: SandboxPlan, options: { workspaceVariable?: string } = {}): ExportFile[] {
  const files: ExportFile[] = [];
  for (const image of plan.images) {
    const dir = image.role;
    files.push({ path: posix.join(dir, "Dockerfile"), content: image.dockerfile });
    for (const file of image.contextFiles) {
      files.push({ path: posix.join(dir, file.path), content: file.content, ...(file.path.endsWith(".sh") ? { mode: 0o755 } : {}) });
    }
  }
  files.push({ path: "squid.conf", content: plan.proxy.squidConf });
  files.push({ path: "allowlist.txt", content: plan.proxy.allowlist.map((p) => `${p}\n`).join("") });
  files.push({ path: "resolv.conf", content: readTemplateFile("templates/files/resolv.conf") });
  for (const file of plan.agent.homeFiles) files.push({ path: posix.join("agent-home", file.path), content: file.content });

  const workspaceVariable = options.workspaceVariable ?? "PERSTACK_WORKSPACE";
  // By hand the workspace is always bound: the copy mode's volume round trip is the CLI's own work.
  const workspaceSource = plan.agent.workspace.source;
  // The agent's key variables hold the run's gateway token: one value the person running the files chooses.
  const env = plan.agent.env.map((entry) => ({
    name: entry.name,
    value: entry.source === "fixed" ? yamlString(entry.value) : JSON.stringify(`\${${entry.source === "token" ? GATEWAY_TOKEN_VARIABLE : entry.name}}`),
  }));
  const gateway = plan.gateway;
  if (gateway) files.push({ path: "gateway.json", content: `${JSON.stringify(gateway.config, null, 2)}\n` });
  // The gateway's secrets by name: the token, the credentials, the provider headers as one JSON object (e.g.
  // PERSTACK_GATEWAY_HEADERS='{"x-team":"…"}'), and for google-vertex the credentials file's content
  // (PERSTACK_GATEWAY_GOOGLE_CREDENTIALS="$(cat key.json)").
  const gatewaySecrets = gateway
    ? [
        GATEWAY_TOKEN_VARIABLE,
        ...gateway.credentials.map((k) => k.name),
        ...(gateway.providerHeaders ? ["PERSTACK_GATEWAY_HEADERS"] : []),
        ...(gateway.googleCredentials ? [GOOGLE_CREDENTIALS_ENV] : []),
      ]
    : [];
  const gatewayEnv = gateway
    ? [
        { name: "PERSTACK_GATEWAY_CONFIG", value: yamlString(`${GATEWAY_CONFIG_DIR}/gateway.json`) },
        ...gatewaySecrets.map((name) => ({ name, value: JSON.stringify(`\${${name}}`) })),
      ]
    : [];
  const agentSecrets = plan.agent.env.filter((e) => e.source === "host" || e.source === "config").map((e) => e.name);
  const command = plan.agent.command.map((arg) =>
    // Plain ${PERSTACK_QUERY}: a ":?" guard would make every compose command, `down` included, demand it.
    arg === QUERY_PLACEHOLDER ? JSON.stringify("${PERSTACK_QUERY}") : yamlString(arg),
  );
  const compose = render("compose/compose.yaml.hbs", {
    expertKey: plan.expert.key,
    runtime: plan.runtime.name,
    secretNames: [
      ...new Set([
        ...gatewaySecrets,
        ...agentSecrets,
      ]),
    ],
    gateway: gateway
      ? {
          image: gateway.image,
          alias: gateway.alias,
          env: gatewayEnv,
          extraHosts: gateway.extraHosts,
          configMount: yamlString(`./gateway.json:${GATEWAY_CONFIG_DIR}/gateway.json:ro`),
        }
      : undefined,
    proxyImage: plan.proxy.image,
    proxyTmpfs: Object.entries(PROXY_TMPFS).map(([path, opts]) => `${path}:${opts}`),
    agentImage: plan.agent.image,
    proxyExtraHosts: plan.proxy.extraHosts,
    proxyAddress: PROXY_ADDRESS,
    proxyAlias: plan.proxy.alias,
    proxyHostEntry: `${plan.proxy.alias}:${PROXY_ADDRESS}`,
    user: plan.agent.user,
    memoryBytes: plan.agent.limits.memoryBytes,
    cpus: plan.agent.limits.nanoCpus / 1e9,
    pidsLimit: plan.agent.limits.pidsLimit,
    tmpfs: Object.entries(plan.agent.tmpfs).map(([path, opts]) => `${path}:${opts}`),
    // Interpolated on purpose, so the files can be pointed at another workspace; the default path is escaped.
    workspaceMount: JSON.stringify(`\${${workspaceVariable}:-${workspaceSource.replace(/\$/g, "$$$$")}}:/workspace:rw`),
    readOnlyMounts: [
      ...plan.agent.mounts.filter((m) => m.readOnly).map((m) => `${m.source}:${m.target}:ro`),
      ...exportedPerstackMount(plan),
      ...(plan.agent.homeFiles.length > 0 ? [`./agent-home:${AGENT_HOME_FILES}:ro`] : []),
    ],
    env,
    command,
    dns: plan.agent.dns,
    sysctls: Object.entries(plan.agent.sysctls).map(([name, value]) => `${name}=${value}`),
    subnet: INTERNAL_SUBNET,
  });
  files.push({ path: "compose.yaml", content: compose });
  return files;
}

/** In copy mode the plan binds nothing, but a compose run binds the workspace, so perstack/ must be bound read-only. */
function exportedPerstackMount(plan: SandboxPlan): string[] {
  if (plan.agent.workspace.mode === "bind") return [];
  return plan.agent.workspace.protected.trees.map((tree) => `${posix.join(plan.agent.workspace.source, tree)}:${posix.join("/workspace", tree)}:ro`);
}
