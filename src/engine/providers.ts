// The provider layer: turns the `[provider]` table of perstack.toml into a Vercel AI SDK LanguageModel, and says
// which environment variables and API hosts each provider needs (for the sandbox's env passing and allowlist).
//
// Every SDK factory can also read its key, base URL and region from process.env by itself. We never let it: all
// values come from the `env` argument and are passed explicitly (an empty string where that is the only way to
// switch a process.env fallback off), so what runs is exactly what the config and the given env say. The one
// exception is google-vertex's Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS from `env` is passed
// as the key file, and without it google-auth-library looks in its usual places (process.env, gcloud, metadata).
//
// `[provider.setting] baseUrl` conventions, per SDK (what the SDK appends to the base URL it is given):
// - anthropic (@ai-sdk/anthropic): `<base>/messages`, so the base ends in `/v1` (default https://api.anthropic.com/v1).
// - openai (@ai-sdk/openai): `<base>/responses` (the default model is the Responses API), so the base ends in
//   `/v1` (default https://api.openai.com/v1).
// - google (@ai-sdk/google): `<base>/models/<model>:streamGenerateContent`, so the base ends in `/v1beta`
//   (default https://generativelanguage.googleapis.com/v1beta).
// - ollama (ollama-ai-provider-v2): `<base>/chat`, so the base ends in `/api` (default http://127.0.0.1:11434/api).
// For these four a baseUrl that is a bare origin (no path, e.g. `http://proxy:8080`) gets the version path added;
// a baseUrl with a path is used as written (a proxy may mount the API elsewhere).
// - google-vertex (@ai-sdk/google-vertex): `<base>/models/<model>:streamGenerateContent`, where the base is
//   https://<location>-aiplatform.googleapis.com/v1beta1/projects/<project>/locations/<location>/publishers/google;
//   a bare-origin baseUrl gets that path (`/v1beta1/projects/.../publishers/google`) added.
// - azure-openai (@ai-sdk/azure): the base is https://<resource>.openai.azure.com/openai and the SDK appends
//   `/v1/responses?api-version=<apiVersion>` for Azure hosts, only `/responses` for other hosts; used as written.
// - amazon-bedrock (@ai-sdk/amazon-bedrock): the base is https://bedrock-runtime.<region>.amazonaws.com and the SDK
//   appends `/model/<model>/converse[-stream]`; used as written.
// - deepseek (@ai-sdk/deepseek): the base is https://api.deepseek.com and the SDK appends `/chat/completions`
//   (DeepSeek serves the same under `/v1`); used as written.
//
// In a sandbox the engine talks to the run's provider gateway (src/gateway), which holds the real credentials. Each
// provider then authenticates with the run's token in the variable its SDK reads a plain API key from; for three
// providers that is not their usual credential, so the engine reads it where the gateway expects it:
// - amazon-bedrock: AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key: `Authorization: Bearer`), instead of SigV4 keys;
// - google-vertex: GOOGLE_VERTEX_API_KEY (express-mode key: `x-goog-api-key`), instead of an OAuth token;
// - ollama: OLLAMA_API_KEY (`Authorization: Bearer`, as ollama.com and authenticating proxies take it).
import { createAmazonBedrock } from "@ai-sdk/amazon-bedrock";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createAzure } from "@ai-sdk/azure";
import { createDeepSeek } from "@ai-sdk/deepseek";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createVertex } from "@ai-sdk/google-vertex";
import type { GoogleVertexProviderSettings } from "@ai-sdk/google-vertex";
import { createOpenAI } from "@ai-sdk/openai";
import type { LanguageModel } from "ai";
import { createOllama } from "ollama-ai-provider-v2";
import type { ProviderConfig, ProviderName } from "../config/schema.js";
import { MissingEnvError } from "../errors.js";

export interface LanguageModelOptions {
  /** Replaces the global fetch for every request the SDK makes (tests intercept the HTTP with it). */
  fetch?: typeof globalThis.fetch;
  /** google-vertex only: extra google-auth-library options (e.g. an `authClient`), merged over the ADC defaults. */
  googleAuthOptions?: GoogleVertexProviderSettings["googleAuthOptions"];
}

const DEFAULT_BASE_URL = {
  anthropic: "https://api.anthropic.com/v1",
  openai: "https://api.openai.com/v1",
  google: "https://generativelanguage.googleapis.com/v1beta",
  deepseek: "https://api.deepseek.com",
  ollama: "http://127.0.0.1:11434/api",
} as const;

/** The variables createLanguageModel reads for each provider: the required ones first, then optional ones. */
const KEY_ENV: Record<ProviderName, readonly string[]> = {
  anthropic: ["ANTHROPIC_API_KEY"],
  openai: ["OPENAI_API_KEY"],
  google: ["GOOGLE_GENERATIVE_AI_API_KEY"],
  "azure-openai": ["AZURE_API_KEY", "AZURE_RESOURCE_NAME"],
  "amazon-bedrock": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_SESSION_TOKEN"],
  "google-vertex": ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_VERTEX_PROJECT", "GOOGLE_VERTEX_LOCATION"],
  deepseek: ["DEEPSEEK_API_KEY"],
  ollama: [],
};

/**
 * Names of the environment variables a provider's credentials and endpoint come from, to forward into a sandbox.
 * Not all are always required: azure-openai needs AZURE_RESOURCE_NAME only without `setting.resourceName` or
 * `baseUrl`; bedrock needs AWS_REGION only without `setting.region` (AWS_SESSION_TOKEN is for temporary
 * credentials); google-vertex reads GOOGLE_APPLICATION_CREDENTIALS when set (else the other ADC sources) and the
 * project/location variables only without the settings. ollama needs none.
 */
export function providerKeyEnv(provider: ProviderConfig): string[] {
  return [...KEY_ENV[provider.providerName]];
}

/** Non-secret variables that stand in for a `[provider.setting]` the file leaves out, first name first. */
export const PROVIDER_SETTING_ENV = {
  "azure-openai": { resourceName: ["AZURE_RESOURCE_NAME"] },
  "amazon-bedrock": { region: ["AWS_REGION"] },
  "google-vertex": { project: ["GOOGLE_VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT"], location: ["GOOGLE_VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION"] },
} as const satisfies Partial<Record<ProviderName, Record<string, readonly string[]>>>;

/** The names of every variable PROVIDER_SETTING_ENV reads, for a provider. */
export function providerSettingEnvNames(provider: ProviderConfig): string[] {
  const table = (PROVIDER_SETTING_ENV as Partial<Record<ProviderName, Record<string, readonly string[]>>>)[provider.providerName];
  return table ? Object.values(table).flat() : [];
}

/**
 * The provider with the settings its API host depends on filled in from their variables when the file leaves them
 * out (the region, project, location, Azure resource), so a plan made on the host can name the host and the engine
 * in the sandbox needs none of those variables. Throws MissingEnvError naming the setting and variables when neither
 * gives one. No baseUrl: a custom endpoint still needs the region, project and location that go into its paths and
 * signatures, but not the Azure resource.
 */
export function withEnvSettings(provider: ProviderConfig, env: NodeJS.ProcessEnv): ProviderConfig {
  switch (provider.providerName) {
    case "azure-openai":
      if (provider.setting?.baseUrl !== undefined) return provider;
      return { ...provider, setting: { ...provider.setting, resourceName: azureResourceName(provider, env) } };
    case "amazon-bedrock":
      return { ...provider, setting: { ...provider.setting, region: bedrockRegion(provider, env) } };
    case "google-vertex":
      return { ...provider, setting: { ...provider.setting, project: vertexProject(provider, env), location: vertexLocation(provider, env) } };
    default:
      return provider;
  }
}

/**
 * The base URL createLanguageModel calls without a configured baseUrl, version path included. Needs the settings
 * withEnvSettings fills in.
 */
export function providerDefaultBaseUrl(provider: ProviderConfig): string {
  switch (provider.providerName) {
    case "anthropic":
    case "openai":
    case "google":
    case "deepseek":
    case "ollama":
      return DEFAULT_BASE_URL[provider.providerName];
    case "azure-openai":
      return `https://${azureResourceName(provider, {})}.openai.azure.com/openai`;
    case "amazon-bedrock":
      return bedrockBaseUrl(bedrockRegion(provider, {}));
    case "google-vertex": {
      const project = vertexProject(provider, {});
      const location = vertexLocation(provider, {});
      return `https://${vertexHost(location)}/v1beta1/projects/${project}/locations/${location}/publishers/google`;
    }
  }
}

/** The hosts the provider's API calls go to, for the sandbox allowlist: the baseUrl host when one is set. */
export function providerApiHosts(provider: ProviderConfig, env: NodeJS.ProcessEnv = {}): string[] {
  const baseUrl = provider.setting?.baseUrl;
  if (baseUrl !== undefined) return [new URL(baseUrl).hostname];
  switch (provider.providerName) {
    case "anthropic":
    case "openai":
    case "google":
    case "deepseek":
    case "ollama":
      return [new URL(DEFAULT_BASE_URL[provider.providerName]).hostname];
    case "azure-openai":
      return [`${azureResourceName(provider, env)}.openai.azure.com`];
    case "amazon-bedrock":
      return [new URL(bedrockBaseUrl(bedrockRegion(provider, env))).hostname];
    case "google-vertex":
      return [vertexHost(vertexLocation(provider, env))];
  }
}

/** A LanguageModel for `model` on the configured provider; throws MissingEnvError naming what is missing. */
export function createLanguageModel(
  provider: ProviderConfig,
  model: string,
  env: NodeJS.ProcessEnv,
  options: LanguageModelOptions = {},
): LanguageModel {
  const headers = provider.setting?.headers;
  const fetch = options.fetch;
  switch (provider.providerName) {
    case "anthropic":
      return createAnthropic({
        apiKey: requireEnv(env, "ANTHROPIC_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1") ?? DEFAULT_BASE_URL.anthropic,
        headers,
        fetch,
      })(model);
    case "openai":
      return createOpenAI({
        apiKey: requireEnv(env, "OPENAI_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1") ?? DEFAULT_BASE_URL.openai,
        organization: provider.setting?.organization,
        project: provider.setting?.project,
        headers,
        fetch,
      })(model);
    case "google":
      return createGoogleGenerativeAI({
        apiKey: requireEnv(env, "GOOGLE_GENERATIVE_AI_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1beta") ?? DEFAULT_BASE_URL.google,
        headers,
        fetch,
      })(model);
    case "azure-openai": {
      const apiKey = requireEnv(env, "AZURE_API_KEY", provider.providerName);
      const baseUrl = provider.setting?.baseUrl;
      return createAzure({
        apiKey,
        ...(baseUrl !== undefined
          ? { baseURL: trimSlash(baseUrl) }
          : { resourceName: azureResourceName(provider, env) }),
        apiVersion: provider.setting?.apiVersion,
        headers,
        fetch,
      })(model);
    }
    case "amazon-bedrock": {
      const region = bedrockRegion(provider, env);
      const bearer = nonEmpty(env.AWS_BEARER_TOKEN_BEDROCK);
      const signing =
        bearer !== undefined
          ? { apiKey: bearer }
          : {
              // "" switches off the SDK's own AWS_BEARER_TOKEN_BEDROCK fallback: requests are SigV4-signed.
              apiKey: "",
              accessKeyId: requireEnv(env, "AWS_ACCESS_KEY_ID", provider.providerName),
              secretAccessKey: requireEnv(env, "AWS_SECRET_ACCESS_KEY", provider.providerName),
              sessionToken: nonEmpty(env.AWS_SESSION_TOKEN),
            };
      return createAmazonBedrock({
        ...signing,
        region,
        baseURL:
          provider.setting?.baseUrl !== undefined ? trimSlash(provider.setting.baseUrl) : bedrockBaseUrl(region),
        headers,
        fetch,
      })(model);
    }
    case "google-vertex": {
      const project = vertexProject(provider, env);
      const location = vertexLocation(provider, env);
      const credentials = nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS);
      const baseUrl = provider.setting?.baseUrl;
      return createVertex({
        // A key (the gateway's token) is sent as `x-goog-api-key` to the base URL below; "" switches off the SDK's
        // own process.env fallback, and auth is then ADC.
        apiKey: nonEmpty(env.GOOGLE_VERTEX_API_KEY) ?? "",
        project,
        location,
        baseURL:
          withVersionPath(baseUrl, `/v1beta1/projects/${project}/locations/${location}/publishers/google`) ??
          `https://${vertexHost(location)}/v1beta1/projects/${project}/locations/${location}/publishers/google`,
        googleAuthOptions: {
          projectId: project,
          ...(credentials !== undefined ? { keyFilename: credentials } : {}),
          ...options.googleAuthOptions,
        },
        headers,
        fetch,
      })(model);
    }
    case "deepseek":
      return createDeepSeek({
        apiKey: requireEnv(env, "DEEPSEEK_API_KEY", provider.providerName),
        baseURL: trimSlash(provider.setting?.baseUrl ?? DEFAULT_BASE_URL.deepseek),
        headers,
        fetch,
      })(model);
    case "ollama": {
      const key = nonEmpty(env.OLLAMA_API_KEY);
      return createOllama({
        baseURL: withVersionPath(provider.setting?.baseUrl, "/api") ?? DEFAULT_BASE_URL.ollama,
        headers: key !== undefined ? { ...headers, authorization: `Bearer ${key}` } : headers,
        fetch,
      })(model);
    }
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function requireEnv(env: NodeJS.ProcessEnv, name: string, provider: ProviderName): string {
  const value = nonEmpty(env[name]);
  if (value === undefined) throw new MissingEnvError(`${name} is not set; the ${provider} provider needs it`);
  return value;
}

/** A setting, else the first non-empty variable; else a MissingEnvError naming both. */
function settingOrEnv(
  provider: ProviderName,
  setting: string | undefined,
  settingName: string,
  env: NodeJS.ProcessEnv,
  names: readonly string[],
): string {
  const value = nonEmpty(setting) ?? names.map((n) => nonEmpty(env[n])).find((v) => v !== undefined);
  if (value === undefined) {
    throw new MissingEnvError(
      `${names.join(" / ")} is not set; the ${provider} provider needs it (or [provider.setting] ${settingName})`,
    );
  }
  return value;
}

type Config<N extends ProviderName> = Extract<ProviderConfig, { providerName: N }>;

function azureResourceName(provider: Config<"azure-openai">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("azure-openai", provider.setting?.resourceName, "resourceName", env, PROVIDER_SETTING_ENV["azure-openai"].resourceName);
}

function bedrockRegion(provider: Config<"amazon-bedrock">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("amazon-bedrock", provider.setting?.region, "region", env, PROVIDER_SETTING_ENV["amazon-bedrock"].region);
}

function vertexProject(provider: Config<"google-vertex">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("google-vertex", provider.setting?.project, "project", env, PROVIDER_SETTING_ENV["google-vertex"].project);
}

function vertexLocation(provider: Config<"google-vertex">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("google-vertex", provider.setting?.location, "location", env, PROVIDER_SETTING_ENV["google-vertex"].location);
}

/** The Vertex AI host for a location, as @ai-sdk/google-vertex builds it. */
function vertexHost(location: string): string {
  if (location === "global") return "aiplatform.googleapis.com";
  if (location === "eu" || location === "us") return `aiplatform.${location}.rep.googleapis.com`;
  return `${location}-aiplatform.googleapis.com`;
}

/** The Bedrock runtime endpoint for a region (China regions live under amazonaws.com.cn). */
function bedrockBaseUrl(region: string): string {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://bedrock-runtime.${region}.${suffix}`;
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** A bare-origin baseUrl gets the SDK's version path; one with a path is kept (without a trailing slash). */
function withVersionPath(baseUrl: string | undefined, versionPath: string): string | undefined {
  if (baseUrl === undefined) return undefined;
  const url = new URL(baseUrl);
  if (url.pathname === "/" && url.search === "") return `${url.origin}${versionPath}`;
  return trimSlash(baseUrl);
}
