// The provider's real credentials, read from the gateway's own environment under their usual names, and how each
// provider wants them on a request. They reach the gateway through the Engine API like any env value; they are
// never logged, and error messages name the variables, never their values.
//
// Bedrock's signer and Google's auth library are loaded only for their provider: the gateway starts on every run's
// critical path, and google-auth-library alone takes it some 70 ms to load.
import { MissingEnvError } from "../errors.js";
import type { GatewayConfig, GatewayProvider } from "./gateway-config.js";
import type { UpstreamAuth } from "./upstream-auth.js";
import { staticHeaderAuth } from "./upstream-auth.js";

/** Providers that take one static key: where it comes from and which header carries it. */
const KEY_HEADER: Partial<Record<GatewayProvider, { env: readonly string[]; header: (key: string) => Record<string, string> }>> = {
  anthropic: { env: ["ANTHROPIC_API_KEY"], header: (key) => ({ "x-api-key": key }) },
  openai: { env: ["OPENAI_API_KEY"], header: (key) => ({ authorization: `Bearer ${key}` }) },
  deepseek: { env: ["DEEPSEEK_API_KEY"], header: (key) => ({ authorization: `Bearer ${key}` }) },
  "azure-openai": { env: ["AZURE_API_KEY"], header: (key) => ({ "api-key": key }) },
  google: { env: ["GOOGLE_GENERATIVE_AI_API_KEY", "GEMINI_API_KEY"], header: (key) => ({ "x-goog-api-key": key }) },
};

function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value) return value;
  }
  return undefined;
}

/** How the gateway authenticates to the configured provider; throws MissingEnvError naming what to set. */
export async function upstreamAuthFromEnv(config: GatewayConfig, env: NodeJS.ProcessEnv): Promise<UpstreamAuth> {
  const { provider } = config;
  switch (provider) {
    case "ollama": {
      // A bare ollama needs no key; one behind an authenticating proxy (or ollama.com) takes a bearer token.
      const key = env.OLLAMA_API_KEY;
      return staticHeaderAuth(key ? { authorization: `Bearer ${key}` } : {});
    }
    case "amazon-bedrock": {
      const accessKeyId = env.AWS_ACCESS_KEY_ID;
      const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
      if (accessKeyId && secretAccessKey) {
        const sessionToken = env.AWS_SESSION_TOKEN || undefined;
        const { bedrockAuth } = await import("./bedrock-signer.js");
        return bedrockAuth(config.bedrock!.region, { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) });
      }
      // Bedrock API keys are bearer tokens and need no signing.
      const bearer = env.AWS_BEARER_TOKEN_BEDROCK;
      if (bearer) return staticHeaderAuth({ authorization: `Bearer ${bearer}` });
      throw new MissingEnvError(
        "amazon-bedrock needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or AWS_BEARER_TOKEN_BEDROCK, in the gateway's environment",
      );
    }
    case "google-vertex": {
      // Without GOOGLE_APPLICATION_CREDENTIALS the library looks for ADC itself and fails on the first request.
      const { googleAuthFromEnv, vertexAuth } = await import("./vertex-token.js");
      return vertexAuth(googleAuthFromEnv(env));
    }
    default: {
      const spec = KEY_HEADER[provider]!;
      const key = firstSet(env, spec.env);
      if (!key) throw new MissingEnvError(`${provider} needs ${spec.env.join(" or ")} in the gateway's environment`);
      return staticHeaderAuth(spec.header(key));
    }
  }
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * perstack.toml's `[provider.setting] headers` (they may carry tokens, so they reach the gateway, never the agent):
 * a JSON object in PERSTACK_GATEWAY_HEADERS, added to every upstream request. The credentials win on a clash.
 */
export function withProviderHeaders(auth: UpstreamAuth, env: NodeJS.ProcessEnv): UpstreamAuth {
  const raw = env.PERSTACK_GATEWAY_HEADERS;
  if (raw === undefined || raw === "") return auth;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new MissingEnvError("PERSTACK_GATEWAY_HEADERS is not JSON: give an object of header names and values");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new MissingEnvError("PERSTACK_GATEWAY_HEADERS must be a JSON object of header names and values");
  }
  const extra: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || /[\r\n]/.test(value)) {
      throw new MissingEnvError(`PERSTACK_GATEWAY_HEADERS: ${JSON.stringify(name)} is not a header name with a one-line string value`);
    }
    extra[name.toLowerCase()] = value;
  }
  return { headersFor: async (request) => ({ ...extra, ...(await auth.headersFor(request)) }) };
}
