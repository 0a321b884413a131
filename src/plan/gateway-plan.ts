// PURE: the provider gateway of one run (issue 10). When it serves the run's provider, the agent gets a per-run
// token in the provider's key variable and a base URL that points at the gateway, reached through squid like any
// configured upstream; the gateway container gets the real credentials (by name: values go to the Engine API at
// creation, as every env value does) and forwards to the provider's API host or the configured baseUrl.
import type { ProviderConfig, ProviderName } from "../config/schema.js";
import type { GatewayProtocol } from "../gateway/types.js";
import type { KeyVariable, RuntimeAdapter } from "../runtimes/types.js";

export const GATEWAY_ALIAS = "perstack-gateway";
export const GATEWAY_PORT = 8080;
/** Where the gateway container finds its (non-secret) config: a read-only bind of the run's gateway.json. */
export const GATEWAY_CONFIG_DIR = "/etc/perstack/gateway";

/** Providers the gateway serves so far, and the protocol each speaks. */
const SERVED: Partial<Record<ProviderName, GatewayProtocol>> = {
  anthropic: "anthropic",
  openai: "openai",
  google: "google",
};

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

/** Whether the gateway serves this runtime and provider. */
export function gatewayServes(adapter: RuntimeAdapter, provider: ProviderConfig): boolean {
  return !adapter.ownService && SERVED[provider.providerName] !== undefined;
}

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
}): GatewayDecision | undefined {
  const protocol = SERVED[args.provider.providerName];
  // Cursor talks to Cursor's own service with its own protocol: its key has to stay in the sandbox.
  if (!gatewayServes(args.adapter, args.provider) || protocol === undefined) return undefined;
  const upstream = trimSlash(args.configuredBaseUrl ?? `https://${args.adapter.apiHosts(args.provider)[0]}`);
  const url = new URL(upstream);
  const credentials = args.adapter.keyEnv(args.provider).filter((k) => !k.optional);
  return {
    gateway: {
      containerName: `perstack-${args.short}-gateway`,
      image: args.image,
      alias: GATEWAY_ALIAS,
      port: GATEWAY_PORT,
      config: {
        protocol,
        provider: args.provider.providerName,
        upstream,
        // Plain http only for what the user configured (a local model server); the provider's own hosts are https.
        ...(url.protocol === "http:" ? { allowInsecureUpstream: true } : {}),
        listen: { host: "0.0.0.0", port: GATEWAY_PORT },
        ...(args.budgets && Object.keys(args.budgets).length > 0 ? { budgets: args.budgets } : {}),
        model: args.model,
        ...(args.pricingTable !== undefined ? { pricing: `${GATEWAY_CONFIG_DIR}/prices.json` } : {}),
      },
      ...(args.pricingTable !== undefined ? { pricingTable: args.pricingTable } : {}),
      providerHeaders: Object.keys(args.provider.setting?.headers ?? {}).length > 0,
      credentials,
      extraHosts: ["host.docker.internal:host-gateway"],
    },
    // The upstream's path (an API mounted under /something) is kept, so the runtime builds the same paths.
    agentBaseUrl: `http://${GATEWAY_ALIAS}:${GATEWAY_PORT}${url.pathname === "/" ? "" : url.pathname}`,
    tokenVariables: credentials.map((k) => k.name),
  };
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
