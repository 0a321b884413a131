// Vertex AI's OAuth bearer token, fetched in the gateway by Google's auth library from the service-account key in
// GOOGLE_APPLICATION_CREDENTIALS or from ADC. The library caches the token and refreshes it before it expires.
import { readFileSync } from "node:fs";
import { GoogleAuth, JWT, gaxios, type JWTInput } from "google-auth-library";
import { MissingEnvError } from "../errors.js";
import { GOOGLE_CREDENTIALS_ENV } from "./gateway-config.js";
import type { UpstreamAuth } from "./upstream-auth.js";

const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";
// google-auth-library 11 always posts service-account assertions here, whatever the key file says.
const GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token";

export interface AccessTokenSource {
  getAccessToken(): Promise<string | null | undefined>;
}

interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
}

/** The ADC JSON the host read for the gateway (PERSTACK_GATEWAY_GOOGLE_CREDENTIALS), or the key file's. */
function readCredentialsJson(env: NodeJS.ProcessEnv): { json: Record<string, unknown>; source: string } | undefined {
  const inline = env[GOOGLE_CREDENTIALS_ENV];
  if (inline) return { json: parseCredentials(inline, GOOGLE_CREDENTIALS_ENV, "is not JSON"), source: GOOGLE_CREDENTIALS_ENV };
  const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS || undefined;
  if (!keyFile) return undefined;
  let text: string;
  try {
    text = readFileSync(keyFile, "utf8");
  } catch (err) {
    throw new MissingEnvError(`GOOGLE_APPLICATION_CREDENTIALS names ${keyFile}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return { json: parseCredentials(text, `GOOGLE_APPLICATION_CREDENTIALS names ${keyFile}, which`, "is not JSON"), source: keyFile };
}

function parseCredentials(text: string, subject: string, problem: string): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MissingEnvError(`${subject} ${problem}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new MissingEnvError(`${subject} is not a JSON object`);
  return json as Record<string, unknown>;
}

/** The credentials as a service-account key, or undefined for other credential types (left to the library). */
function serviceAccountKey(json: Record<string, unknown>, source: string): ServiceAccountKey | undefined {
  if (json.type !== "service_account") return undefined;
  const key = json as Partial<Record<keyof ServiceAccountKey, unknown>>;
  if (typeof key.client_email !== "string" || typeof key.private_key !== "string") {
    throw new MissingEnvError(`the service-account key ${source} lacks client_email or private_key`);
  }
  return {
    client_email: key.client_email,
    private_key: key.private_key,
    ...(typeof key.private_key_id === "string" ? { private_key_id: key.private_key_id } : {}),
    ...(typeof key.token_uri === "string" ? { token_uri: key.token_uri } : {}),
  };
}

/** A transporter that sends the token request to the key's own `token_uri`, which the library would ignore. */
function transporterFor(tokenUri: string | undefined): gaxios.Gaxios | undefined {
  if (tokenUri === undefined || tokenUri === GOOGLE_TOKEN_URL) return undefined;
  const target = new URL(tokenUri);
  const transporter = new gaxios.Gaxios();
  transporter.interceptors.request.add({
    resolved: (options) => {
      if (options.url.href === GOOGLE_TOKEN_URL) options.url = target;
      return Promise.resolve(options);
    },
  });
  return transporter;
}

/**
 * The cloud-platform token source, from the credentials the host read (PERSTACK_GATEWAY_GOOGLE_CREDENTIALS) or the
 * file GOOGLE_APPLICATION_CREDENTIALS names (an exported compose file may mount one). A service-account key is
 * checked and used through the JWT client (what Google's library recommends over handing it unchecked input),
 * honouring the key's `token_uri` as Google's Python and Go libraries do (private endpoints; the gateway's tests).
 * Other credential types (a gcloud user login, workload identity) go to the library as they are; with none, the
 * library looks for Application Default Credentials itself (the metadata server).
 */
export function googleAuthFromEnv(env: NodeJS.ProcessEnv): AccessTokenSource {
  const found = readCredentialsJson(env);
  const key = found ? serviceAccountKey(found.json, found.source) : undefined;
  if (key) {
    const transporter = transporterFor(key.token_uri);
    const jwt = new JWT({
      email: key.client_email,
      key: key.private_key,
      ...(key.private_key_id ? { keyId: key.private_key_id } : {}),
      scopes: [CLOUD_PLATFORM_SCOPE],
      ...(transporter ? { transporter } : {}),
    });
    return { getAccessToken: async () => (await jwt.getAccessToken()).token };
  }
  const auth = new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE], ...(found ? { credentials: found.json as JWTInput } : {}) });
  return { getAccessToken: () => auth.getAccessToken() };
}

export class VertexTokenError extends Error {}

export function vertexAuth(source: AccessTokenSource): UpstreamAuth {
  return {
    async headersFor() {
      const token = await source.getAccessToken();
      if (!token) throw new VertexTokenError("Google's auth library returned no access token");
      return { authorization: `Bearer ${token}` };
    },
  };
}
