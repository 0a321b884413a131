// Tenants of `perstack serve`: their limits, API tokens and provider keys, in server.db.
//
// Tokens: `pst_<tenant>_<43 base64url characters>` (256 random bits). The tenant name in a token only says which
// row to check, so a request costs one lookup, not a scan; it is not trusted: the whole token is verified against
// that row's hash. Only a hash is stored: scrypt (memory-hard, in node:crypto) with a random salt, its parameters
// kept in the stored string (PHC format) so that they can be raised later without invalidating old tokens. Each
// comparison is constant-time, and a token naming a tenant that does not exist is hashed against a dummy, so a
// response time does not tell which tenant names exist.
//
// scrypt takes tens of milliseconds on purpose. An API under load must not pay that on every request, so a
// verified token is remembered for a minute, keyed by its SHA-256 (a fast hash is fine there: the input is 256
// random bits, nothing to guess). A remembered token still costs a lookup of its tenant's row: if the stored hash
// is no longer the one it was verified against (rotated or removed, by this process or by `perstack tenants` in
// another), it is verified from scratch and fails.
//
// Secrets are stored only encrypted, bound to their tenant and name (server-key.ts).
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { RUNTIME_NAMES, type RuntimeName } from "../config/schema.js";
import { BadInputError } from "../errors.js";
import { closestKey } from "../text/did-you-mean.js";
import { explainDbError, inTransaction, openServerDb, SERVER_DB_FILE } from "./server-db.js";
import { decryptSecret, encryptSecret, loadServerKey, type SealedSecret } from "./server-key.js";

/** A tenant name, a secret's name or value, or a limit is not acceptable. Exit code 2; a 400 over the API. */
export class InvalidTenantInputError extends BadInputError {}
export class TenantNotFoundError extends BadInputError {}
export class TenantExistsError extends BadInputError {}
export class SecretNotFoundError extends BadInputError {}

const TENANT_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_SECRET_NAME_LENGTH = 128;
/** Provider keys and service-account files are far smaller; a larger value is a mistake (a file piped in). */
export const MAX_SECRET_BYTES = 64 * 1024;

const TOKEN_PREFIX = "pst_";
const TOKEN_RANDOM_BYTES = 32;
/** base64url of 32 bytes, unpadded. */
const TOKEN_RANDOM_CHARS = 43;
// The random part has a fixed length, so the name is what lies between the prefix and the last 44 characters,
// even though both may contain '_'.
const TOKEN = new RegExp(`^${TOKEN_PREFIX}([A-Za-z0-9_-]{1,64})_([A-Za-z0-9_-]{${TOKEN_RANDOM_CHARS}})$`);

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

/** 2^15, 8, 1: 32 MiB and some 50-100 ms per hash, the interactive-login parameters of the scrypt paper and RFC 7914. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const CACHE_TTL_MS = 60_000;
const CACHE_MAX_ENTRIES = 4_096;

export interface TenantLimits {
  /** Runs of this tenant executing at once; absent: only the machine-wide limit applies. */
  maxConcurrent?: number;
  /** US dollars of metered model cost per day; absent: no budget. */
  maxCostPerDay?: number;
  /** The runtimes its runs may use; absent: all. */
  runtimes?: RuntimeName[];
}

export interface Tenant extends TenantLimits {
  name: string;
  /** ms since the epoch. */
  createdAt: number;
}

export interface TenantListing extends Tenant {
  /** The names of its secrets (never the values). */
  secrets: string[];
}

interface TenantRow {
  name: string;
  token_hash: string;
  max_concurrent: number | null;
  max_cost_per_day: number | null;
  runtimes: string | null;
  created_at: number;
}

interface SecretRow {
  name: string;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  tag: Uint8Array;
}

export function checkTenantName(name: string): void {
  if (!TENANT_NAME.test(name)) {
    throw new InvalidTenantInputError(`tenant name ${JSON.stringify(name)} may hold only letters, digits, '-' and '_' (1 to 64 of them)`);
  }
}

export function checkSecretName(name: string): void {
  if (!SECRET_NAME.test(name) || name.length > MAX_SECRET_NAME_LENGTH) {
    throw new InvalidTenantInputError(
      `${JSON.stringify(name)} is not an environment variable name: letters, digits and '_', not starting with a digit, at most ${MAX_SECRET_NAME_LENGTH}`,
    );
  }
}

function checkSecretValue(name: string, value: string): void {
  if (value.length === 0) throw new InvalidTenantInputError(`the value of ${name} is empty`);
  if (Buffer.byteLength(value, "utf8") > MAX_SECRET_BYTES) throw new InvalidTenantInputError(`the value of ${name} is larger than ${MAX_SECRET_BYTES / 1024} KiB`);
  // An environment variable cannot hold NUL: the runner could not pass it on.
  if (value.includes("\0")) throw new InvalidTenantInputError(`the value of ${name} contains a NUL byte, which an environment variable cannot hold`);
}

/** The limits as stored: each checked, runtimes without repeats, absent ones left out. */
export function checkLimits(limits: TenantLimits): TenantLimits {
  const checked: TenantLimits = {};
  if (limits.maxConcurrent !== undefined) {
    if (!Number.isSafeInteger(limits.maxConcurrent) || limits.maxConcurrent < 1) {
      throw new InvalidTenantInputError(`max concurrent runs must be a whole number of at least 1, not ${limits.maxConcurrent}`);
    }
    checked.maxConcurrent = limits.maxConcurrent;
  }
  if (limits.maxCostPerDay !== undefined) {
    if (!Number.isFinite(limits.maxCostPerDay) || limits.maxCostPerDay <= 0) {
      throw new InvalidTenantInputError(`max cost per day must be an amount of US dollars above 0, not ${limits.maxCostPerDay}`);
    }
    checked.maxCostPerDay = limits.maxCostPerDay;
  }
  if (limits.runtimes !== undefined) {
    if (limits.runtimes.length === 0) throw new InvalidTenantInputError(`the runtimes list is empty; leave it out to allow every runtime (${RUNTIME_NAMES.join(", ")})`);
    for (const runtime of limits.runtimes) {
      if (!(RUNTIME_NAMES as readonly string[]).includes(runtime)) {
        const suggestion = closestKey(runtime, RUNTIME_NAMES);
        throw new InvalidTenantInputError(
          `${JSON.stringify(runtime)} is not a runtime${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; valid runtimes: ${RUNTIME_NAMES.join(", ")}`,
        );
      }
    }
    checked.runtimes = [...new Set(limits.runtimes)];
  }
  return checked;
}

function scryptHash(token: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Node's default maxmem (32 MiB) is just short of what N = 2^15, r = 8 needs (128 * N * r plus a little).
    scrypt(token, salt, length, { ...params, maxmem: 256 * params.N * params.r }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

const b64 = (bytes: Buffer) => bytes.toString("base64").replace(/=+$/, "");

/** `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (PHC string format, unpadded base64). */
export async function hashToken(token: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptHash(token, salt, params, HASH_BYTES);
  return `$scrypt$ln=${Math.log2(params.N)},r=${params.r},p=${params.p}$${b64(salt)}$${b64(hash)}`;
}

const ENCODED = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

interface StoredHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

function parseStoredHash(encoded: string): StoredHash | undefined {
  const match = ENCODED.exec(encoded);
  if (!match) return undefined;
  const [ln, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // Bounds keep a damaged row from asking for gigabytes of memory.
  if (ln < 1 || ln > 22 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const hash = Buffer.from(match[5]!, "base64");
  if (hash.length < 16) return undefined;
  return { params: { N: 2 ** ln, r, p }, salt: Buffer.from(match[4]!, "base64"), hash };
}

/** Whether `token` hashes to `encoded`; compared in constant time. */
export async function verifyToken(token: string, encoded: string): Promise<boolean> {
  const stored = parseStoredHash(encoded);
  if (!stored) return false;
  const candidate = await scryptHash(token, stored.salt, stored.params, stored.hash.length);
  return timingSafeEqual(candidate, stored.hash);
}

/** A hash no token matches (its "hash" part is random): what a token for a missing tenant is checked against. */
function dummyHash(params: ScryptParams): string {
  return `$scrypt$ln=${Math.log2(params.N)},r=${params.r},p=${params.p}$${b64(randomBytes(SALT_BYTES))}$${b64(randomBytes(HASH_BYTES))}`;
}

function newToken(tenant: string): string {
  return `${TOKEN_PREFIX}${tenant}_${randomBytes(TOKEN_RANDOM_BYTES).toString("base64url")}`;
}

/** The tenant a token claims to belong to, if it has a token's shape at all. */
export function tokenTenant(token: string): string | undefined {
  return TOKEN.exec(token)?.[1];
}

function toTenant(row: TenantRow): Tenant {
  const tenant: Tenant = { name: row.name, createdAt: row.created_at };
  if (row.max_concurrent !== null) tenant.maxConcurrent = row.max_concurrent;
  if (row.max_cost_per_day !== null) tenant.maxCostPerDay = row.max_cost_per_day;
  if (row.runtimes !== null) tenant.runtimes = JSON.parse(row.runtimes) as RuntimeName[];
  return tenant;
}

function sealedOf(row: SecretRow): SealedSecret {
  return { iv: Buffer.from(row.iv), ciphertext: Buffer.from(row.ciphertext), tag: Buffer.from(row.tag) };
}

interface RememberedToken {
  tenant: string;
  /** The stored hash the token was verified against. */
  tokenHash: string;
  expiresAt: number;
}

export interface TenantStoreOptions {
  /** How long a verified token is trusted without scrypt (ms); 0 turns the cache off. */
  cacheTtlMs?: number;
  /** Parameters for new hashes (stored ones keep theirs). */
  scrypt?: ScryptParams;
  /** Named in error messages: the database file, and the --data directory that holds it. */
  dbPath?: string;
  dataDir?: string;
  now?: () => number;
}

export class TenantStore {
  readonly #db: DatabaseSync;
  #key: Buffer | (() => Buffer);
  readonly #cache = new Map<string, RememberedToken>();
  readonly #cacheTtlMs: number;
  readonly #scrypt: ScryptParams;
  readonly #dummyHash: string;
  readonly #dbPath: string;
  readonly #dataDir: string | undefined;
  readonly #now: () => number;

  /** `key`: the server key, or a function that reads it when a secret is first set or read. */
  constructor(db: DatabaseSync, key: Buffer | (() => Buffer), options: TenantStoreOptions = {}) {
    this.#db = db;
    this.#key = key;
    this.#cacheTtlMs = options.cacheTtlMs ?? CACHE_TTL_MS;
    this.#scrypt = options.scrypt ?? DEFAULT_SCRYPT;
    this.#dummyHash = dummyHash(this.#scrypt);
    this.#dbPath = options.dbPath ?? "server.db";
    this.#dataDir = options.dataDir;
    this.#now = options.now ?? Date.now;
  }

  /** The store in `<dataDir>`: server.db (created if missing) and server.key (created when a secret is first set). */
  static open(dataDir: string, options: Omit<TenantStoreOptions, "dbPath" | "dataDir"> = {}): TenantStore {
    return new TenantStore(openServerDb(dataDir), () => loadServerKey(dataDir), { ...options, dbPath: join(dataDir, SERVER_DB_FILE), dataDir });
  }

  close(): void {
    this.#db.close();
  }

  /** Adds a tenant; returns its API token, which is not stored and cannot be shown again. */
  async add(name: string, limits: TenantLimits = {}): Promise<string> {
    checkTenantName(name);
    const checked = checkLimits(limits);
    this.#refuseTaken(name);
    const token = newToken(name);
    const tokenHash = await hashToken(token, this.#scrypt);
    this.#sql(() =>
      inTransaction(this.#db, () => {
        // Again under the write lock: another process may have added it while scrypt ran.
        this.#refuseTaken(name);
        this.#db
          .prepare("INSERT INTO tenants (name, token_hash, max_concurrent, max_cost_per_day, runtimes, created_at) VALUES (?, ?, ?, ?, ?, ?)")
          .run(name, tokenHash, checked.maxConcurrent ?? null, checked.maxCostPerDay ?? null, checked.runtimes ? JSON.stringify(checked.runtimes) : null, this.#now());
      }),
    );
    return token;
  }

  /** Every tenant, by name, with the names of its secrets. No token hash, no secret value. */
  list(): TenantListing[] {
    return this.#sql(() => {
      const rows = this.#db.prepare("SELECT * FROM tenants ORDER BY name").all() as unknown as TenantRow[];
      const secrets = this.#db.prepare("SELECT tenant, name FROM tenant_secrets ORDER BY tenant, name").all() as unknown as Array<{ tenant: string; name: string }>;
      return rows.map((row) => ({ ...toTenant(row), secrets: secrets.filter((s) => s.tenant === row.name).map((s) => s.name) }));
    });
  }

  get(name: string): Tenant | undefined {
    const row = this.#row(name);
    return row ? toTenant(row) : undefined;
  }

  /** A new token for the tenant; the old one stops working at once, here and in every other process. */
  async rotate(name: string): Promise<string> {
    this.#existing(name);
    const token = newToken(name);
    const tokenHash = await hashToken(token, this.#scrypt);
    const changes = this.#sql(() => this.#db.prepare("UPDATE tenants SET token_hash = ? WHERE name = ?").run(tokenHash, name).changes);
    this.#forget(name);
    if (Number(changes) === 0) throw this.#notFound(name);
    return token;
  }

  /** Removes the tenant and its secrets; returns how many secrets went with it. */
  remove(name: string): number {
    this.#existing(name);
    const secrets = this.#sql(() =>
      inTransaction(this.#db, () => {
        const removed = this.#db.prepare("DELETE FROM tenant_secrets WHERE tenant = ?").run(name).changes;
        if (Number(this.#db.prepare("DELETE FROM tenants WHERE name = ?").run(name).changes) === 0) throw this.#notFound(name);
        return Number(removed);
      }),
    );
    this.#forget(name);
    return secrets;
  }

  /** The tenant a bearer token belongs to, or undefined. Never throws for a bad token. */
  async authenticate(token: string): Promise<Tenant | undefined> {
    const name = tokenTenant(token);
    // Not shaped like a token: no tenant's, and the shape is public, so answering at once tells nothing.
    if (name === undefined) return undefined;
    const digest = createHash("sha256").update(token).digest("hex");
    const remembered = this.#cache.get(digest);
    if (remembered) {
      const row = remembered.expiresAt > this.#now() ? this.#row(name) : undefined;
      if (row && row.name === remembered.tenant && row.token_hash === remembered.tokenHash) return toTenant(row);
      this.#cache.delete(digest);
    }
    const row = this.#row(name);
    // A missing tenant costs the same scrypt as a wrong token for an existing one.
    const valid = await verifyToken(token, row?.token_hash ?? this.#dummyHash);
    if (!valid || !row) return undefined;
    // Rotated or removed while scrypt ran: only the hash just verified counts.
    const current = this.#row(name);
    if (!current || current.token_hash !== row.token_hash) return undefined;
    this.#remember(digest, { tenant: name, tokenHash: row.token_hash, expiresAt: this.#now() + this.#cacheTtlMs });
    return toTenant(current);
  }

  /** Sets (or replaces) a secret of the tenant; returns whether it replaced one. */
  setSecret(tenant: string, name: string, value: string): boolean {
    checkTenantName(tenant);
    checkSecretName(name);
    checkSecretValue(name, value);
    this.#existing(tenant);
    const sealed = encryptSecret(this.#serverKey(), value, { tenant, name });
    return this.#sql(() =>
      inTransaction(this.#db, () => {
        this.#existing(tenant);
        const replaced = this.#db.prepare("SELECT 1 FROM tenant_secrets WHERE tenant = ? AND name = ?").get(tenant, name) !== undefined;
        this.#db
          .prepare(
            `INSERT INTO tenant_secrets (tenant, name, iv, ciphertext, tag, updated_at) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO UPDATE SET iv = excluded.iv, ciphertext = excluded.ciphertext, tag = excluded.tag, updated_at = excluded.updated_at`,
          )
          .run(tenant, name, sealed.iv, sealed.ciphertext, sealed.tag, this.#now());
        return replaced;
      }),
    );
  }

  removeSecret(tenant: string, name: string): void {
    checkSecretName(name);
    this.#existing(tenant);
    const changes = this.#sql(() => this.#db.prepare("DELETE FROM tenant_secrets WHERE tenant = ? AND name = ?").run(tenant, name).changes);
    if (Number(changes) === 0) {
      const names = this.secretNames(tenant);
      const suggestion = closestKey(name, names);
      throw new SecretNotFoundError(
        `tenant "${tenant}" has no secret ${name}${suggestion ? ` (did you mean ${suggestion}?)` : ""}; its secrets: ${names.length > 0 ? names.join(", ") : "none"}`,
      );
    }
  }

  secretNames(tenant: string): string[] {
    this.#existing(tenant);
    return this.#sql(() =>
      (this.#db.prepare("SELECT name FROM tenant_secrets WHERE tenant = ? ORDER BY name").all(tenant) as unknown as Array<{ name: string }>).map((row) => row.name),
    );
  }

  /** The tenant's secrets decrypted, for the runner that injects them into that tenant's gateways. Never for a response. */
  secretValues(tenant: string): Record<string, string> {
    this.#existing(tenant);
    const rows = this.#sql(() => this.#db.prepare("SELECT name, iv, ciphertext, tag FROM tenant_secrets WHERE tenant = ? ORDER BY name").all(tenant) as unknown as SecretRow[]);
    if (rows.length === 0) return {};
    const key = this.#serverKey();
    // fromEntries defines own properties: a secret named __proto__ stays a secret.
    return Object.fromEntries(rows.map((row) => [row.name, decryptSecret(key, sealedOf(row), { tenant, name: row.name })]));
  }

  #serverKey(): Buffer {
    if (typeof this.#key === "function") this.#key = this.#key();
    return this.#key;
  }

  #row(name: string): TenantRow | undefined {
    if (!TENANT_NAME.test(name)) return undefined;
    return this.#sql(() => this.#db.prepare("SELECT * FROM tenants WHERE name = ?").get(name) as unknown as TenantRow | undefined);
  }

  #existing(name: string): TenantRow {
    checkTenantName(name);
    const row = this.#row(name);
    if (!row) throw this.#notFound(name);
    return row;
  }

  #notFound(name: string): TenantNotFoundError {
    const names = this.#sql(() => (this.#db.prepare("SELECT name FROM tenants ORDER BY name").all() as unknown as Array<{ name: string }>).map((row) => row.name));
    const suggestion = closestKey(name, names);
    const where = this.#dataDir === undefined ? "" : ` in ${this.#dataDir}`;
    return new TenantNotFoundError(`no tenant named "${name}"${where}${suggestion ? ` (did you mean "${suggestion}"?)` : ""}`);
  }

  #refuseTaken(name: string): void {
    const taken = this.#sql(() => this.#db.prepare("SELECT name FROM tenants WHERE name = ? COLLATE NOCASE").get(name) as { name: string } | undefined);
    if (!taken) return;
    throw new TenantExistsError(
      taken.name === name
        ? `tenant "${name}" already exists; perstack tenants rotate ${name} gives it a new token`
        : `tenant "${taken.name}" already exists, and names may not differ in case only (their job directories would collide)`,
    );
  }

  #remember(digest: string, entry: RememberedToken): void {
    if (this.#cacheTtlMs <= 0) return;
    if (this.#cache.size >= CACHE_MAX_ENTRIES) {
      const now = this.#now();
      for (const [key, value] of this.#cache) if (value.expiresAt <= now) this.#cache.delete(key);
      // Still full: drop the oldest (a Map iterates in insertion order).
      for (const key of this.#cache.keys()) {
        if (this.#cache.size < CACHE_MAX_ENTRIES) break;
        this.#cache.delete(key);
      }
    }
    this.#cache.set(digest, entry);
  }

  #forget(tenant: string): void {
    for (const [key, value] of this.#cache) if (value.tenant === tenant) this.#cache.delete(key);
  }

  /** A SQLite failure told as what happened to which file. */
  #sql<T>(fn: () => T): T {
    try {
      return fn();
    } catch (caught) {
      throw explainDbError(caught, this.#dbPath);
    }
  }
}
