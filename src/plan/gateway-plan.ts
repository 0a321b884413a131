// PURE: the provider gateway of one run (issue 10). When it serves the run's provider, the agent gets a per-run
// token in the provider's key variable and a base URL that points at the gateway, reached through squid like any
// configured upstream; the gateway container gets the real credentials (by name: the values go to the running
// container over the Engine API, gateway/handover.ts) and forwards to the provider's API host or the configured baseUrl.
import type { ProviderConfig, ProviderName } from "../config/schema.js";
import { providerDefaultBaseUrl } from "../engine/provider-env.js";
import { GATEWAY_CONFIG_DIR } from "../gateway/handover.js";
import type { GatewayProtocol } from "../gateway/types.js";
import type { KeyVariable, RuntimeAdapter } from "../runtimes/types.js";

export const GATEWAY_ALIAS = "perstack-gateway";
export const GATEWAY_PORT = 8080;
export { GATEWAY_CONFIG_DIR } from "../gateway/handover.js";

/** How the gateway serves one provider. */
interface ServedProvider {
  protocol: GatewayProtocol;
  /**
   * The API roots a runtime appends its request paths to (longest first). A base URL whose path ends in one is
   * split there: the agent is given the gateway with that root, and the gateway forwards to the rest. Either way the
   * upstream URL is the configured one with the request's path after it, so the split loses nothing.
   */
  apiRoots: (provider: ProviderConfig) => readonly string[];
  /**
   * The variables the runtime authenticates with, which hold the run's token. Absent: the runtime's own key
   * variables (ANTHROPIC_API_KEY, GEMINI_API_KEY, ...), which then also name the gateway's credentials.
   */
  agentKeys?: readonly string[];
  /** The real credentials the gateway reads, when not the runtime's key variables. */
  credentials?: readonly KeyVariable[];
}

const OPENAI_ROOTS = ["/openai/v1", "/openai", "/v1"] as const;

/** Every provider a runtime outside its vendor's own service can use; see src/engine/providers.ts for the SDKs. */
const SERVED: Record<ProviderName, ServedProvider> = {
  anthropic: { protocol: "anthropic", apiRoots: () => ["/v1"] },
  openai: { protocol: "openai", apiRoots: () => OPENAI_ROOTS },
  "azure-openai": { protocol: "openai", apiRoots: () => OPENAI_ROOTS },
  deepseek: { protocol: "openai", apiRoots: () => OPENAI_ROOTS },
  google: { protocol: "google", apiRoots: () => ["/v1beta", "/v1alpha", "/v1"] },
  ollama: {
    protocol: "ollama",
    apiRoots: () => ["/api", "/v1"],
    agentKeys: ["OLLAMA_API_KEY"],
    // A bare Ollama needs no key; one behind an authenticating proxy, or ollama.com, takes this one.
    credentials: [{ name: "OLLAMA_API_KEY", from: ["OLLAMA_API_KEY"], optional: true }],
  },
  "amazon-bedrock": {
    protocol: "bedrock",
    apiRoots: () => [],
    // The engine sends the token as a Bedrock API key (a bearer); the gateway signs with SigV4 instead.
    agentKeys: ["AWS_BEARER_TOKEN_BEDROCK"],
    credentials: [
      { name: "AWS_ACCESS_KEY_ID", from: ["AWS_ACCESS_KEY_ID"] },
      { name: "AWS_SECRET_ACCESS_KEY", from: ["AWS_SECRET_ACCESS_KEY"] },
      { name: "AWS_SESSION_TOKEN", from: ["AWS_SESSION_TOKEN"], optional: true },
    ],
  },
  "google-vertex": {
    protocol: "vertex",
    apiRoots: (provider) => {
      const { project, location } = vertexSettings(provider);
      return ["v1beta1", "v1"].map((version) => `/${version}/projects/${project}/locations/${location}/publishers/google`);
    },
    // The engine sends the token as an express-mode key; the gateway gets an OAuth token from the credentials file.
    agentKeys: ["GOOGLE_VERTEX_API_KEY"],
    credentials: [],
  },
};

/** Hosts of Azure OpenAI, where @ai-sdk/azure puts `/v1` after `/openai` itself (and nowhere else). */
const AZURE_HOST = /\.(?:openai\.azure\.com|services\.ai\.azure\.com|cognitiveservices\.azure\.com)$/;

export interface GatewayBudgets {
  maxCostUsd?: number;
  maxTokens?: number;
}

/** What src/gateway/gateway-config.ts reads. */
export interface GatewayFileConfig {
  protocol: GatewayProtocol;
  provider: ProviderName;
  upstream: string;
  allowInsecureUpstream?: boolean;
  listen: { host: string; port: number };
  budgets?: GatewayBudgets;
  model: string;
  /** --pricing: the table's file beside gateway.json (absent: the table shipped in the image). */
  pricing?: string;
  /** amazon-bedrock: the SigV4 scope's region. */
  bedrock?: { region: string };
  /** google-vertex: what the model paths must name. */
  vertex?: { project: string; location: string };
  /** Query parameters the gateway adds to every upstream request (Azure's api-version, set in perstack.toml). */
  upstreamQuery?: Record<string, string>;
  /** perstack serve: connect only to public addresses, unless the upstream's host[:port] is allowed. */
  refusePrivateUpstreams?: { allow: string[] };
}

export interface GatewayPlan {
  containerName: string;
  image: string;
  alias: string;
  port: number;
  config: GatewayFileConfig;
  /** --pricing: the price table's text, written beside gateway.json (not secret). */
  pricingTable?: string;
  /** [provider.setting] headers exist: their values go to the gateway as PERSTACK_GATEWAY_HEADERS at run time. */
  providerHeaders: boolean;
  /** The real credentials, read from the host at run time like the agent's own variables. */
  credentials: KeyVariable[];
  /**
   * google-vertex: the host reads the Application Default Credentials file (GOOGLE_APPLICATION_CREDENTIALS, else
   * gcloud's) at run time and gives its content to the gateway as PERSTACK_GATEWAY_GOOGLE_CREDENTIALS.
   */
  googleCredentials: boolean;
  /** host.docker.internal for a model server on the Docker host. */
  extraHosts: string[];
}

export interface GatewayDecision {
  gateway: GatewayPlan;
  /** The base URL the agent's runtime is given instead of the provider's. */
  agentBaseUrl: string;
  /** The agent's key variables: each holds the run's token, never a real key. */
  tokenVariables: string[];
}

/** Whether the gateway serves this runtime and provider: every provider, unless the runtime talks to its own service. */
export function gatewayServes(adapter: RuntimeAdapter, _provider: ProviderConfig): boolean {
  return !adapter.ownService;
}

/**
 * `provider` has the settings its host depends on filled in already (withEnvSettings). Without a configured base
 * URL the upstream is where the runtime would go: the engine's SDK default, the CLI's API host; ollama's is the
 * Docker host, where "localhost:11434" of a run outside a container is.
 */
export function planGateway(args: {
  adapter: RuntimeAdapter;
  provider: ProviderConfig;
  /** perstack.toml's baseUrl, else the runtime's conventional variable. */
  configuredBaseUrl: string | undefined;
  model: string;
  budgets?: GatewayBudgets;
  /** --pricing: the table's text, already validated. */
  pricingTable?: string;
  image: string;
  short: string;
  /** perstack serve's upstream policy (PlanInput.upstreamPolicy): the gateway refuses private addresses itself. */
  upstreamPolicy?: { allow: string[] };
}): GatewayDecision | undefined {
  const { adapter, provider } = args;
  // Cursor talks to Cursor's own service with its own protocol: its key has to stay in the sandbox.
  if (!gatewayServes(adapter, provider)) return undefined;
  const served = SERVED[provider.providerName];
  const configured = args.configuredBaseUrl ?? defaultUpstream(adapter, provider);
  const { upstream, agentRoot } = splitApiRoot(configured, served.apiRoots(provider));
  // @ai-sdk/azure puts `/v1` (and an api-version) after an Azure host's `/openai` itself, but not after the
  // gateway's: the agent is given the path the SDK would have called.
  const azure = provider.providerName === "azure-openai" && AZURE_HOST.test(upstream.hostname);
  // A CLI appends the whole API path, root included (`/v1/messages`, `/v1beta/models/...`; codex adds `/v1`), so
  // it gets the bare gateway. That also makes perstack.toml's baseUrl, written for the SDKs with its root, work
  // for the CLIs: the root moves to the CLI's side of the gateway.
  const agentPath = !adapter.runsExperts ? "" : azure && agentRoot === "/openai" ? "/openai/v1" : agentRoot;
  const apiVersion = provider.providerName === "azure-openai" ? provider.setting?.apiVersion : undefined;
  const credentials = served.credentials ? [...served.credentials] : adapter.keyEnv(provider).filter((k) => !k.optional);
  const agentKeys = served.agentKeys ? [...served.agentKeys] : credentials.map((k) => k.name);
  const upstreamText = `${upstream.origin}${upstream.pathname === "/" ? "" : upstream.pathname}`;
  return {
    gateway: {
      containerName: `perstack-${args.short}-gateway`,
      image: args.image,
      alias: GATEWAY_ALIAS,
      port: GATEWAY_PORT,
      config: {
        protocol: served.protocol,
        provider: provider.providerName,
        upstream: upstreamText,
        // Plain http only for what the user configured (a local model server); the provider's own hosts are https.
        ...(upstream.protocol === "http:" ? { allowInsecureUpstream: true } : {}),
        listen: { host: "0.0.0.0", port: GATEWAY_PORT },
        ...(args.budgets && Object.keys(args.budgets).length > 0 ? { budgets: args.budgets } : {}),
        model: args.model,
        ...(args.pricingTable !== undefined ? { pricing: `${GATEWAY_CONFIG_DIR}/prices.json` } : {}),
        ...(provider.providerName === "amazon-bedrock" ? { bedrock: { region: bedrockSettings(provider).region } } : {}),
        ...(provider.providerName === "google-vertex" ? { vertex: vertexSettings(provider) } : {}),
        ...(azure && agentRoot === "/openai" && apiVersion !== undefined ? { upstreamQuery: { "api-version": apiVersion } } : {}),
        ...(args.upstreamPolicy ? { refusePrivateUpstreams: { allow: [...args.upstreamPolicy.allow] } } : {}),
      },
      ...(args.pricingTable !== undefined ? { pricingTable: args.pricingTable } : {}),
      providerHeaders: Object.keys(provider.setting?.headers ?? {}).length > 0,
      credentials,
      googleCredentials: provider.providerName === "google-vertex",
      extraHosts: ["host.docker.internal:host-gateway"],
    },
    agentBaseUrl: `http://${GATEWAY_ALIAS}:${GATEWAY_PORT}${agentPath}`,
    tokenVariables: agentKeys,
  };
}

function defaultUpstream(adapter: RuntimeAdapter, provider: ProviderConfig): string {
  if (provider.providerName === "ollama") return "http://host.docker.internal:11434/api";
  // A CLI appends its whole API path (/v1/messages) to a bare host; the engine's SDKs have a versioned default.
  return adapter.runsExperts ? providerDefaultBaseUrl(provider) : `https://${adapter.apiHosts(provider)[0]}`;
}

/** Splits a base URL at the first API root its path ends with: the upstream keeps the rest of the path. */
export function splitApiRoot(baseUrl: string, roots: readonly string[]): { upstream: URL; agentRoot: string } {
  const url = new URL(baseUrl);
  const path = url.pathname.replace(/\/+$/, "");
  const root = roots.find((r) => path === r || path.endsWith(r)) ?? "";
  const upstream = new URL(url.origin);
  upstream.pathname = path.slice(0, path.length - root.length) || "/";
  return { upstream, agentRoot: root };
}

type Config<N extends ProviderName> = Extract<ProviderConfig, { providerName: N }>;

function vertexSettings(provider: ProviderConfig): { project: string; location: string } {
  const setting = (provider as Config<"google-vertex">).setting;
  if (!setting?.project || !setting.location) throw new Error("google-vertex: project and location must be filled in before planning");
  return { project: setting.project, location: setting.location };
}

function bedrockSettings(provider: ProviderConfig): { region: string } {
  const region = (provider as Config<"amazon-bedrock">).setting?.region;
  if (!region) throw new Error("amazon-bedrock: the region must be filled in before planning");
  return { region };
}
