// The gateway's non-secret configuration: a JSON file the host writes per run and names in PERSTACK_GATEWAY_CONFIG.
// Secrets never go into it: the per-run token and the provider's real credentials come from the environment only
// (see credentials.ts), so the file can sit next to the exported compose file and be read by anyone.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { BadInputError, MissingEnvError } from "../errors.js";
import { addressKind, describeKind, ipLiteral, isAllowedUpstream, isPublicAddress } from "./address-policy.js";
import type { GatewayProtocol } from "./types.js";

export class GatewayConfigError extends BadInputError {}

export const GATEWAY_PROTOCOLS = ["anthropic", "openai", "google", "ollama", "bedrock", "vertex"] as const;

/**
 * The Perstack provider whose credentials the gateway injects. The protocol alone does not say it: azure-openai and
 * deepseek speak the OpenAI protocol but authenticate differently.
 */
export const GATEWAY_PROVIDERS = [
  "anthropic",
  "openai",
  "azure-openai",
  "deepseek",
  "google",
  "ollama",
  "amazon-bedrock",
  "google-vertex",
] as const;
export type GatewayProvider = (typeof GATEWAY_PROVIDERS)[number];

const PROVIDER_PROTOCOL: Record<GatewayProvider, GatewayProtocol> = {
  anthropic: "anthropic",
  openai: "openai",
  "azure-openai": "openai",
  deepseek: "openai",
  google: "google",
  ollama: "ollama",
  "amazon-bedrock": "bedrock",
  "google-vertex": "vertex",
};

const DEFAULT_PROVIDER: Record<GatewayProtocol, GatewayProvider> = {
  anthropic: "anthropic",
  openai: "openai",
  google: "google",
  ollama: "ollama",
  bedrock: "amazon-bedrock",
  vertex: "google-vertex",
};

// Values that end up in a URL path or a SigV4 scope: plain identifiers only, so none can smuggle a path segment.
const identifier = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: "must be lowercase letters, digits and dashes" });

const schema = z
  .strictObject({
    protocol: z.enum(GATEWAY_PROTOCOLS),
    provider: z.enum(GATEWAY_PROVIDERS).optional(),
    /** The one upstream base URL; a path prefix (https://host/api) is kept and requests are mapped under it. */
    upstream: z.string(),
    /** Plain http to the upstream, for a model server on a host address (ollama, a local baseUrl). */
    allowInsecureUpstream: z.boolean().optional(),
    /**
     * perstack serve (tenants' configs are untrusted): connect only to public addresses, checked on every new
     * connection (a name rebound to a private address after the server checked it), unless the upstream's host[:port]
     * is one of `allow` (--allow-private-upstream). Absent: the CLI's runs, whose user may mean a local model server.
     */
    refusePrivateUpstreams: z.strictObject({ allow: z.array(z.string().min(1)) }).optional(),
    /** Extra PEM CA certificates trusted for the upstream (a corporate TLS proxy, tests), besides the default roots. */
    caFile: z.string().min(1).optional(),
    listen: z.strictObject({
      host: z.string().min(1),
      port: z.number().int().min(0).max(65535),
    }),
    budgets: z
      .strictObject({
        maxCostUsd: z.number().positive().optional(),
        maxTokens: z.number().int().positive().optional(),
      })
      .optional(),
    /** The run's model: what a usage record names when neither the response nor the request does. */
    model: z.string().min(1).optional(),
    /** A price table file (see pricing.ts); absent means the table shipped with Perstack. */
    pricing: z.string().min(1).optional(),
    /** The largest request body the gateway accepts (it buffers request bodies: see server.ts). */
    maxRequestBytes: z.number().int().positive().optional(),
    /** Query parameters added to every upstream request (Azure's api-version); a client's of the same name are dropped. */
    upstreamQuery: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), z.string().max(256)).optional(),
    bedrock: z.strictObject({ region: identifier }).optional(),
    vertex: z.strictObject({ project: z.string().regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, { error: "is not a Google Cloud project id" }), location: identifier }).optional(),
  })
  .superRefine((config, ctx) => {
    let url: URL;
    try {
      url = new URL(config.upstream);
    } catch {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: `"${config.upstream}" is not a URL` });
      return;
    }
    if (url.protocol !== "https:" && !(url.protocol === "http:" && config.allowInsecureUpstream === true)) {
      ctx.addIssue({
        code: "custom",
        path: ["upstream"],
        message: `"${url.protocol}" upstreams are refused: use https, or set allowInsecureUpstream for a local model server`,
      });
    }
    // An IP literal is connected to without a lookup, so the connect-time filter never sees it: refused here.
    const literal = ipLiteral(url.hostname);
    if (config.refusePrivateUpstreams && literal !== undefined && !isPublicAddress(literal) && !isAllowedUpstream(url, config.refusePrivateUpstreams.allow)) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: `is ${describeKind(addressKind(literal))}, refused by refusePrivateUpstreams` });
    }
    if (url.username || url.password) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: "must not carry credentials" });
    }
    if (url.search || url.hash) {
      ctx.addIssue({ code: "custom", path: ["upstream"], message: "must not have a query or fragment" });
    }
    const provider = config.provider ?? DEFAULT_PROVIDER[config.protocol];
    if (PROVIDER_PROTOCOL[provider] !== config.protocol) {
      ctx.addIssue({
        code: "custom",
        path: ["provider"],
        message: `${provider} speaks the ${PROVIDER_PROTOCOL[provider]} protocol, not ${config.protocol}`,
      });
    }
    if (config.protocol === "bedrock" && !config.bedrock) {
      ctx.addIssue({ code: "custom", path: ["bedrock"], message: "the bedrock protocol needs bedrock.region (the SigV4 scope)" });
    }
    if (config.protocol === "vertex" && !config.vertex) {
      ctx.addIssue({ code: "custom", path: ["vertex"], message: "the vertex protocol needs vertex.project and vertex.location" });
    }
  });

type ParsedConfig = z.infer<typeof schema>;

/** The validated config, with the provider filled in and the upstream parsed. */
export interface GatewayConfig extends Omit<ParsedConfig, "provider" | "upstream"> {
  provider: GatewayProvider;
  upstream: URL;
}

/** Validates a parsed JSON value; `source` names it in errors. */
export function parseGatewayConfig(value: unknown, source: string): GatewayConfig {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
    throw new GatewayConfigError(`gateway config ${source}: ${key} ${issue.message}`);
  }
  const { provider, upstream, ...rest } = result.data;
  return { ...rest, provider: provider ?? DEFAULT_PROVIDER[rest.protocol], upstream: new URL(upstream) };
}

export const CONFIG_ENV = "PERSTACK_GATEWAY_CONFIG";
export const TOKEN_ENV = "PERSTACK_GATEWAY_TOKEN";
/** google-vertex: the Application Default Credentials JSON, read by the host from the user's file. */
export const GOOGLE_CREDENTIALS_ENV = "PERSTACK_GATEWAY_GOOGLE_CREDENTIALS";
/** Short tokens could be guessed through the 401s; the host generates 32 random bytes. */
const MIN_TOKEN_LENGTH = 24;

/** Reads the config file named by PERSTACK_GATEWAY_CONFIG. */
export function readGatewayConfig(env: NodeJS.ProcessEnv): GatewayConfig {
  const path = env[CONFIG_ENV];
  if (!path) throw new MissingEnvError(`${CONFIG_ENV} is not set: it must name the gateway's JSON config file`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new GatewayConfigError(`cannot read the gateway config ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GatewayConfigError(`the gateway config ${path} is not valid JSON`);
  }
  return parseGatewayConfig(value, path);
}

/** The per-run token the agent presents instead of a provider key. */
export function readGatewayToken(env: NodeJS.ProcessEnv): string {
  const token = env[TOKEN_ENV];
  if (!token) throw new MissingEnvError(`${TOKEN_ENV} is not set: the gateway needs the run's token to check callers`);
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new GatewayConfigError(`${TOKEN_ENV} is too short (${token.length} characters; at least ${MIN_TOKEN_LENGTH})`);
  }
  return token;
}
