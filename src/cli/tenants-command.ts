// `perstack tenants`: the operator's side of `perstack serve`: tenants, their API tokens and provider keys, in the
// same --data directory the server uses. A token is printed once, on stdout alone (so `$(perstack tenants add …)`
// captures just the token); it is stored only as a hash. A secret's value is read from stdin, never from the
// command line, where it would land in shell history and in every process listing.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { formatDateTime } from "../history/display-units.js";
import { InvalidOptionError } from "../errors.js";
import { SERVER_DB_FILE } from "../server/server-db.js";
import { SERVER_KEY_FILE } from "../server/server-key.js";
import { MAX_SECRET_BYTES, TenantNotFoundError, TenantStore, checkSecretName, checkTenantName, type TenantLimits, type TenantListing } from "../server/tenant-store.js";
import type { RuntimeName } from "../config/schema.js";
import { processIo, type CommandIo } from "./command-io.js";
import { jsonTerminalSafe } from "./terminal-text.js";

export interface TenantsOptions {
  /** The server's data directory, as given (relative to the working directory). */
  data: string;
  json?: boolean;
}

export interface TenantsAddOptions extends TenantsOptions {
  maxConcurrent?: number;
  maxCostPerDay?: number;
  /** Comma-separated runtime names. */
  runtimes?: string;
}

/** Where `secret set` reads the value from: the process's stdin, or a test's. */
export interface SecretInput {
  isTTY: boolean;
  /** Everything up to end of input, refusing more than `limit` bytes. */
  read(limit: number): Promise<string>;
}

function processStdin(): SecretInput {
  return {
    isTTY: Boolean(process.stdin.isTTY),
    read: async (limit) => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of process.stdin) {
        const bytes = typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer);
        size += bytes.length;
        if (size > limit) throw new InvalidOptionError(`the value on stdin is larger than ${MAX_SECRET_BYTES / 1024} KiB; a secret is a key or a token, not a file`);
        chunks.push(bytes);
      }
      return Buffer.concat(chunks).toString("utf8");
    },
  };
}

function dataDirOf(options: TenantsOptions, io: CommandIo): string {
  return resolve(io.cwd, options.data);
}

/** The store of a data directory that must already exist: only `add` creates one, so a mistyped --data shows. */
function existingStore(options: TenantsOptions, io: CommandIo, tenant: string): TenantStore {
  checkTenantName(tenant);
  const dir = dataDirOf(options, io);
  if (!existsSync(join(dir, SERVER_DB_FILE))) {
    throw new TenantNotFoundError(`no tenant named "${tenant}": ${dir} holds no server data (${SERVER_DB_FILE}); check --data, or add the tenant with perstack tenants add`);
  }
  return TenantStore.open(dir);
}

function withStore<T>(store: TenantStore, fn: (store: TenantStore) => T): T {
  try {
    return fn(store);
  } finally {
    store.close();
  }
}

async function withStoreAsync<T>(store: TenantStore, fn: (store: TenantStore) => Promise<T>): Promise<T> {
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

function printToken(name: string, token: string, what: string, options: TenantsOptions, io: CommandIo): void {
  if (options.json) {
    io.stdout(`${JSON.stringify({ name, token })}\n`);
    return;
  }
  io.stderr(`${what}; its API token follows, shown this once only (perstack keeps just a hash of it):\n`);
  io.stdout(`${token}\n`);
}

export function parseRuntimeList(list: string): string[] {
  return list
    .split(",")
    .map((runtime) => runtime.trim())
    .filter((runtime) => runtime.length > 0);
}

export async function tenantsAddCommand(name: string, options: TenantsAddOptions, io: CommandIo = processIo()): Promise<number> {
  const limits: TenantLimits = {};
  if (options.maxConcurrent !== undefined) limits.maxConcurrent = options.maxConcurrent;
  if (options.maxCostPerDay !== undefined) limits.maxCostPerDay = options.maxCostPerDay;
  // Checked against the runtime names by the store (with a did-you-mean).
  if (options.runtimes !== undefined) limits.runtimes = parseRuntimeList(options.runtimes) as RuntimeName[];
  checkTenantName(name);
  const token = await withStoreAsync(TenantStore.open(dataDirOf(options, io)), (store) => store.add(name, limits));
  printToken(name, token, `added tenant "${name}"`, options, io);
  return 0;
}

function listingJson(tenant: TenantListing): Record<string, unknown> {
  // null, not absent: a reader sees "no limit" rather than a missing field.
  return {
    name: tenant.name,
    maxConcurrent: tenant.maxConcurrent ?? null,
    maxCostPerDay: tenant.maxCostPerDay ?? null,
    runtimes: tenant.runtimes ?? null,
    secrets: tenant.secrets,
    createdAt: tenant.createdAt,
  };
}

const COLUMNS = ["NAME", "MAX-CONCURRENT", "MAX-COST/DAY", "RUNTIMES", "SECRETS", "CREATED"] as const;

export function formatTenantTable(tenants: readonly TenantListing[]): string {
  const rows = tenants.map((t) => [
    t.name,
    t.maxConcurrent !== undefined ? String(t.maxConcurrent) : "-",
    t.maxCostPerDay !== undefined ? `$${t.maxCostPerDay.toFixed(2)}` : "-",
    t.runtimes ? t.runtimes.join(",") : "all",
    t.secrets.length > 0 ? t.secrets.join(",") : "-",
    formatDateTime(t.createdAt),
  ]);
  const widths = COLUMNS.map((column, i) => Math.max(column.length, ...rows.map((row) => row[i]!.length)));
  return [COLUMNS, ...rows].map((cells) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

export function tenantsListCommand(options: TenantsOptions, io: CommandIo = processIo()): number {
  const dir = dataDirOf(options, io);
  // Listing must not create a data directory where a mistyped --data points.
  const tenants = existsSync(join(dir, SERVER_DB_FILE)) ? withStore(TenantStore.open(dir), (store) => store.list()) : [];
  if (options.json) {
    io.stdout(`${jsonTerminalSafe(JSON.stringify(tenants.map(listingJson)))}\n`);
  } else if (tenants.length === 0) {
    io.stdout(`no tenants in ${dir}; add one with perstack tenants add <name> --data ${options.data}\n`);
  } else {
    io.stdout(`${formatTenantTable(tenants)}\n`);
  }
  return 0;
}

export async function tenantsRotateCommand(name: string, options: TenantsOptions, io: CommandIo = processIo()): Promise<number> {
  const token = await withStoreAsync(existingStore(options, io, name), (store) => store.rotate(name));
  printToken(name, token, `new token for tenant "${name}"; the old one no longer works`, options, io);
  return 0;
}

export function tenantsRemoveCommand(name: string, options: TenantsOptions, io: CommandIo = processIo()): number {
  const secrets = withStore(existingStore(options, io, name), (store) => store.remove(name));
  io.stdout(`removed tenant "${name}"${secrets > 0 ? ` and its ${secrets === 1 ? "secret" : `${secrets} secrets`}` : ""}; its token no longer works\n`);
  return 0;
}

/** The value as piped in, less the one line ending `echo` or a file adds. */
export function secretFromInput(text: string): string {
  return text.replace(/\r?\n$/, "");
}

export async function tenantsSecretSetCommand(
  name: string,
  variable: string,
  options: TenantsOptions,
  io: CommandIo = processIo(),
  input: SecretInput = processStdin(),
): Promise<number> {
  checkSecretName(variable);
  return withStoreAsync(existingStore(options, io, name), async (store) => {
    // A missing tenant is reported before anything is read from stdin.
    store.secretNames(name);
    if (input.isTTY) {
      throw new InvalidOptionError(
        `perstack tenants secret set reads the value of ${variable} from stdin, not from a terminal; pipe it in: printf '%s' "$${variable}" | perstack tenants secret set ${name} ${variable}`,
      );
    }
    const value = secretFromInput(await input.read(MAX_SECRET_BYTES + 2));
    if (value.length === 0) throw new InvalidOptionError(`stdin was empty: no value for ${variable}; pipe the value in, e.g. printf '%s' "$${variable}" | perstack tenants secret set ${name} ${variable}`);
    const replaced = store.setSecret(name, variable, value);
    io.stdout(`${replaced ? "replaced" : "set"} ${variable} for tenant "${name}" (stored encrypted with ${join(dataDirOf(options, io), SERVER_KEY_FILE)})\n`);
    return 0;
  });
}

export function tenantsSecretRemoveCommand(name: string, variable: string, options: TenantsOptions, io: CommandIo = processIo()): number {
  checkSecretName(variable);
  withStore(existingStore(options, io, name), (store) => store.removeSecret(name, variable));
  io.stdout(`removed ${variable} from tenant "${name}"\n`);
  return 0;
}
