// The provider layer: turns the `[provider]` table of perstack.toml into a Vercel AI SDK LanguageModel. Which
// variables and API hosts each provider needs is in provider-env.ts. Only the run's provider SDK is loaded: loading
// them all took half the engine's start-up in the agent container.
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
import type { GoogleVertexProviderSettings } from "@ai-sdk/google-vertex";
import type { LanguageModel } from "ai";
import type { ProviderConfig } from "../config/schema.js";
import {
  azureResourceName,
  bedrockBaseUrl,
  bedrockRegion,
  DEFAULT_BASE_URL,
  nonEmpty,
  requireEnv,
  trimSlash,
  vertexHost,
  vertexLocation,
  vertexProject,
  withVersionPath,
} from "./provider-env.js";

export interface LanguageModelOptions {
  /** Replaces the global fetch for every request the SDK makes (tests intercept the HTTP with it). */
  fetch?: typeof globalThis.fetch;
  /** google-vertex only: extra google-auth-library options (e.g. an `authClient`), merged over the ADC defaults. */
  googleAuthOptions?: GoogleVertexProviderSettings["googleAuthOptions"];
}

/** A LanguageModel for `model` on the configured provider; throws MissingEnvError naming what is missing. */
export async function createLanguageModel(
  provider: ProviderConfig,
  model: string,
  env: NodeJS.ProcessEnv,
  options: LanguageModelOptions = {},
): Promise<LanguageModel> {
  const headers = provider.setting?.headers;
  const fetch = options.fetch;
  switch (provider.providerName) {
    case "anthropic": {
      const { createAnthropic } = await import("@ai-sdk/anthropic");
      return createAnthropic({
        apiKey: requireEnv(env, "ANTHROPIC_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1") ?? DEFAULT_BASE_URL.anthropic,
        headers,
        fetch,
      })(model);
    }
    case "openai": {
      const { createOpenAI } = await import("@ai-sdk/openai");
      return createOpenAI({
        apiKey: requireEnv(env, "OPENAI_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1") ?? DEFAULT_BASE_URL.openai,
        organization: provider.setting?.organization,
        project: provider.setting?.project,
        headers,
        fetch,
      })(model);
    }
    case "google": {
      const { createGoogleGenerativeAI } = await import("@ai-sdk/google");
      return createGoogleGenerativeAI({
        apiKey: requireEnv(env, "GOOGLE_GENERATIVE_AI_API_KEY", provider.providerName),
        baseURL: withVersionPath(provider.setting?.baseUrl, "/v1beta") ?? DEFAULT_BASE_URL.google,
        headers,
        fetch,
      })(model);
    }
    case "azure-openai": {
      const apiKey = requireEnv(env, "AZURE_API_KEY", provider.providerName);
      const baseUrl = provider.setting?.baseUrl;
      const { createAzure } = await import("@ai-sdk/azure");
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
      const { createAmazonBedrock } = await import("@ai-sdk/amazon-bedrock");
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
      const { createVertex } = await import("@ai-sdk/google-vertex");
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
    case "deepseek": {
      const { createDeepSeek } = await import("@ai-sdk/deepseek");
      return createDeepSeek({
        apiKey: requireEnv(env, "DEEPSEEK_API_KEY", provider.providerName),
        baseURL: trimSlash(provider.setting?.baseUrl ?? DEFAULT_BASE_URL.deepseek),
        headers,
        fetch,
      })(model);
    }
    case "ollama": {
      const key = nonEmpty(env.OLLAMA_API_KEY);
      const { createOllama } = await import("ollama-ai-provider-v2");
      return createOllama({
        baseURL: withVersionPath(provider.setting?.baseUrl, "/api") ?? DEFAULT_BASE_URL.ollama,
        headers: key !== undefined ? { ...headers, authorization: `Bearer ${key}` } : headers,
        fetch,
      })(model);
    }
  }
}
