// EFFECTS (reads one file): the Application Default Credentials a google-vertex run's gateway gets Vertex AI's OAuth
// tokens with. The host reads the file, as Google's libraries would (GOOGLE_APPLICATION_CREDENTIALS, else gcloud's
// `application-default login` file), and hands its content to the gateway like any secret value, through the Engine
// API: the path is the host's, and a bind mount would not work on a remote engine or for a file only its owner reads.
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { MissingEnvError } from "../errors.js";

/** Credential types the gateway can use without anything else from the host (a workload-identity file can point at one). */
const USABLE_TYPES = new Set(["service_account", "authorized_user", "impersonated_service_account", "external_account_authorized_user"]);

/** gcloud's ADC file: $CLOUDSDK_CONFIG, else ~/.config/gcloud (%APPDATA%\gcloud on Windows). */
export function gcloudAdcPath(env: NodeJS.ProcessEnv): string {
  const dir = env.CLOUDSDK_CONFIG || (process.platform === "win32" && env.APPDATA ? join(env.APPDATA, "gcloud") : join(homedir(), ".config", "gcloud"));
  return join(dir, "application_default_credentials.json");
}

/**
 * The credentials JSON (compact), or throws MissingEnvError naming the file and what to do. `explicit` is
 * GOOGLE_APPLICATION_CREDENTIALS from the environment or env files, relative to `cwd` if relative.
 */
export function readGoogleCredentials(explicit: string | undefined, cwd: string, env: NodeJS.ProcessEnv): string {
  const path = explicit ? resolve(cwd, explicit) : gcloudAdcPath(env);
  const named = explicit ? `GOOGLE_APPLICATION_CREDENTIALS names ${path}, which` : `${path}`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    if (!explicit && code === "ENOENT") {
      throw new MissingEnvError(
        "provider google-vertex needs Google credentials for the provider gateway: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run `gcloud auth application-default login`",
      );
    }
    throw new MissingEnvError(`${named} cannot be read (${code}); point GOOGLE_APPLICATION_CREDENTIALS at a readable key file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MissingEnvError(`${named} is not JSON; point GOOGLE_APPLICATION_CREDENTIALS at a service-account key file`);
  }
  const type = typeof json === "object" && json !== null && !Array.isArray(json) ? (json as { type?: unknown }).type : undefined;
  if (typeof type !== "string" || !USABLE_TYPES.has(type)) {
    throw new MissingEnvError(
      `${named} holds ${typeof type === "string" ? `"${type}" credentials` : "no credentials type"}; the provider gateway takes a service-account key or a gcloud user login (${[...USABLE_TYPES].join(", ")})`,
    );
  }
  return JSON.stringify(json);
}
