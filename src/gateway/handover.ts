// PURE: a run's configuration for the provider gateway, handed to a gateway container that is already running, on its
// stdin: the config files it reads (gateway.json, and --pricing's table) and the secrets it holds (the run's token, the
// provider's credentials). The container is created with neither, so they appear in no container metadata
// (`docker inspect`, monitoring agents that read containers' environments) and in no file on the host; the host writes
// them over the Engine API's attach stream, once, and the container's stdin closes after it (StdinOnce).
//
// The gateway reads the whole of stdin, then checks it here before anything is written: only known file names, a
// bounded size, variable names that are names.

/** The gateway's environment variable that asks for a handover on stdin instead of a config file and variables. */
export const HANDOVER_ENV = "PERSTACK_GATEWAY_HANDOVER";
export const HANDOVER_STDIN = "stdin";

/**
 * Where the gateway's config files are, whichever way they came: a read-only bind of the host's files, or a tmpfs the
 * gateway writes a handover's files into.
 */
export const GATEWAY_CONFIG_DIR = "/etc/perstack/gateway";

/** The files a handover may carry: written into GATEWAY_CONFIG_DIR. */
export const HANDOVER_FILES = ["gateway.json", "prices.json"] as const;
export type HandoverFile = (typeof HANDOVER_FILES)[number];

/** More than any config, price table and credentials file together; a bound on what the gateway buffers. */
export const MAX_HANDOVER_BYTES = 8 * 1024 * 1024;

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export interface GatewayHandover {
  files: Partial<Record<HandoverFile, string>> & { "gateway.json": string };
  env: Record<string, string>;
}

export class HandoverError extends Error {
  override name = "HandoverError";
}

/** The handover as the host writes it: one JSON object. */
export function handoverText(handover: GatewayHandover): string {
  return JSON.stringify(handover);
}

/** Checks what arrived on the gateway's stdin; throws HandoverError naming what is wrong (never a value). */
export function parseHandover(text: string): GatewayHandover {
  if (Buffer.byteLength(text) > MAX_HANDOVER_BYTES) throw new HandoverError(`the handover on stdin is larger than ${MAX_HANDOVER_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HandoverError(text.trim() === "" ? "stdin closed before a handover arrived" : "the handover on stdin is not JSON");
  }
  if (!isRecord(value) || !isRecord(value.files) || !isRecord(value.env)) throw new HandoverError("the handover on stdin must be an object of files and env");
  const files: Partial<Record<HandoverFile, string>> = {};
  for (const [name, content] of Object.entries(value.files)) {
    if (!(HANDOVER_FILES as readonly string[]).includes(name)) throw new HandoverError(`the handover names a file ${JSON.stringify(name.slice(0, 40))}; only ${HANDOVER_FILES.join(" and ")} are read`);
    if (typeof content !== "string") throw new HandoverError(`the handover's ${name} is not text`);
    files[name as HandoverFile] = content;
  }
  if (files["gateway.json"] === undefined) throw new HandoverError("the handover has no gateway.json");
  const env: Record<string, string> = {};
  for (const [name, content] of Object.entries(value.env)) {
    if (!VARIABLE_NAME.test(name)) throw new HandoverError(`the handover's env has a name that is not a variable name (${JSON.stringify(name.slice(0, 40))})`);
    if (typeof content !== "string") throw new HandoverError(`the handover's ${name} is not text`);
    env[name] = content;
  }
  return { files: files as GatewayHandover["files"], env };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
