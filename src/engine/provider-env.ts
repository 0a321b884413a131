// PURE: what each provider of the built-in runtime needs from its environment, and where its API lives: the
// variables its credentials and settings come from, its default base URL and API hosts. Plain tables, apart from
// the SDKs (providers.ts): the host plans runs with them (env passing, the allowlist, the gateway's upstream)
// without loading any provider SDK, and the engine builds its model with the same tables.
import type { ProviderConfig, ProviderName } from "../config/schema.js";
import { MissingEnvError } from "../errors.js";

export const DEFAULT_BASE_URL = {
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

export function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

export function requireEnv(env: NodeJS.ProcessEnv, name: string, provider: ProviderName): string {
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

export function azureResourceName(provider: Config<"azure-openai">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("azure-openai", provider.setting?.resourceName, "resourceName", env, PROVIDER_SETTING_ENV["azure-openai"].resourceName);
}

export function bedrockRegion(provider: Config<"amazon-bedrock">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("amazon-bedrock", provider.setting?.region, "region", env, PROVIDER_SETTING_ENV["amazon-bedrock"].region);
}

export function vertexProject(provider: Config<"google-vertex">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("google-vertex", provider.setting?.project, "project", env, PROVIDER_SETTING_ENV["google-vertex"].project);
}

export function vertexLocation(provider: Config<"google-vertex">, env: NodeJS.ProcessEnv): string {
  return settingOrEnv("google-vertex", provider.setting?.location, "location", env, PROVIDER_SETTING_ENV["google-vertex"].location);
}

/** The Vertex AI host for a location, as @ai-sdk/google-vertex builds it. */
export function vertexHost(location: string): string {
  if (location === "global") return "aiplatform.googleapis.com";
  if (location === "eu" || location === "us") return `aiplatform.${location}.rep.googleapis.com`;
  return `${location}-aiplatform.googleapis.com`;
}

/** The Bedrock runtime endpoint for a region (China regions live under amazonaws.com.cn). */
export function bedrockBaseUrl(region: string): string {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return `https://bedrock-runtime.${region}.${suffix}`;
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

/** A bare-origin baseUrl gets the SDK's version path; one with a path is kept (without a trailing slash). */
export function withVersionPath(baseUrl: string | undefined, versionPath: string): string | undefined {
  if (baseUrl === undefined) return undefined;
  const url = new URL(baseUrl);
  if (url.pathname === "/" && url.search === "") return `${url.origin}${versionPath}`;
  return trimSlash(baseUrl);
}
