// The server's database, <data>/server.db: tenants and their secrets, and the run queue. One file that
// `perstack serve` and the `perstack tenants` commands open at the same time, from different processes: WAL lets
// readers go on while one writes, and busy_timeout makes a writer wait its turn instead of failing at once.
//
// The schema grows by appending to MIGRATIONS, never by editing an entry: a database records in user_version how
// many it has applied, and opening it applies the rest in one transaction.
import { mkdirSync, openSync, closeSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { InvalidOptionError, PerstackError } from "../errors.js";

/** Where `perstack serve` and `perstack tenants` keep their state unless --data says otherwise. */
export const DEFAULT_SERVER_DATA_DIR = "./perstack-server";
export const SERVER_DB_FILE = "server.db";

/** How long a statement waits for another process's write lock before it fails (ms). */
const BUSY_TIMEOUT_MS = 10_000;

/** Schema changes in order: entry i brings a database from version i to version i + 1. Append only. */
export const MIGRATIONS: readonly string[] = [
  // 1: tenants and their secrets. Names are unique regardless of case: a tenant's jobs live in a directory named
  // after it, and two names that differ only in case would share it on a case-insensitive file system.
  `CREATE TABLE tenants (
     name TEXT NOT NULL PRIMARY KEY,
     token_hash TEXT NOT NULL,
     max_concurrent INTEGER,
     max_cost_per_day REAL,
     runtimes TEXT,
     created_at INTEGER NOT NULL
   ) STRICT;
   CREATE UNIQUE INDEX tenants_name_nocase ON tenants (name COLLATE NOCASE);
   CREATE TABLE tenant_secrets (
     tenant TEXT NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
     name TEXT NOT NULL,
     iv BLOB NOT NULL,
     ciphertext BLOB NOT NULL,
     tag BLOB NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (tenant, name)
   ) STRICT;`,
  // 2: the run queue (server/run-queue.ts): a row per invocation of a job (a continuation is another row of the same
  // job). No reference to tenants: a removed tenant's runs stay on record.
  `CREATE TABLE runs (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     job_id TEXT NOT NULL,
     tenant TEXT NOT NULL,
     status TEXT NOT NULL,
     submitted_at INTEGER NOT NULL,
     started_at INTEGER,
     finished_at INTEGER,
     outcome TEXT,
     reason TEXT,
     allocated_usd REAL,
     cost_usd REAL,
     request TEXT NOT NULL
   ) STRICT;
   CREATE INDEX runs_by_job ON runs (job_id, seq);
   CREATE INDEX runs_by_status ON runs (status, tenant, seq);
   CREATE INDEX runs_by_tenant ON runs (tenant, seq);`,
  // 3: comparisons (server/comparisons.ts): one expert and query on several runtimes, a job each.
  `CREATE TABLE comparisons (
     id TEXT NOT NULL PRIMARY KEY,
     tenant TEXT NOT NULL,
     runtimes TEXT NOT NULL,
     job_ids TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) STRICT;
   CREATE INDEX comparisons_by_tenant ON comparisons (tenant, created_at);`,
  // 4: submissions named by an Idempotency-Key (server/submission-keys.ts): the run each made (runs.seq), or that it
  // was cancelled before it made one.
  `CREATE TABLE submission_keys (
     tenant TEXT NOT NULL,
     key TEXT NOT NULL,
     seq INTEGER,
     cancelled INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (tenant, key)
   ) STRICT;`,
];

type SqliteModule = typeof import("node:sqlite");
let sqlite: SqliteModule | undefined;

/**
 * node:sqlite, loaded on first use. Node 22 prints "ExperimentalWarning: SQLite is an experimental feature" when
 * the module loads, on every `perstack tenants` command and server start: noise for a user, who can do nothing
 * about it. The module is loaded synchronously here with that one warning filtered out; every other warning, and
 * this one from any other module, still reaches process.emitWarning.
 */
function loadSqlite(): SqliteModule {
  if (sqlite) return sqlite;
  const emitWarning = process.emitWarning;
  process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
    const text = typeof warning === "string" ? warning : warning.message;
    const type = typeof warning === "string" ? (typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type) : warning.name;
    if (type === "ExperimentalWarning" && text.startsWith("SQLite ")) return;
    return (emitWarning as (...args: unknown[]) => void).call(this, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    sqlite = createRequire(import.meta.url)("node:sqlite") as SqliteModule;
  } catch (caught) {
    // node:sqlite needs no flag from Node 22.13 on.
    throw new PerstackError(`the server database needs Node's built-in SQLite (node:sqlite, Node 22.13 or later); this is Node ${process.versions.node}: ${(caught as Error).message}`);
  } finally {
    process.emitWarning = emitWarning;
  }
  return sqlite;
}

interface SqliteError extends Error {
  code?: string;
  errcode?: number;
  errstr?: string;
}

/** A SQLite failure as a user reads it: what is wrong with which file, without the driver's wording. */
export function explainDbError(caught: unknown, path: string): Error {
  if (caught instanceof PerstackError) return caught;
  const error = caught as SqliteError;
  if (error?.code !== "ERR_SQLITE_ERROR") return error instanceof Error ? error : new Error(String(caught));
  switch ((error.errcode ?? 0) & 0xff) {
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      return new PerstackError(`${path} stayed locked by another process for ${BUSY_TIMEOUT_MS / 1000}s; try again`);
    case 8: // SQLITE_READONLY
      return new PerstackError(`${path} is read-only for this user; run as the user who owns it`);
    case 11: // SQLITE_CORRUPT
    case 26: // SQLITE_NOTADB
      return new PerstackError(`${path} is damaged or not a perstack server database; restore it from a backup or point --data elsewhere`);
    case 13: // SQLITE_FULL
      return new PerstackError(`the disk holding ${path} is full; free some space and try again`);
    case 14: // SQLITE_CANTOPEN
      return new PerstackError(`cannot open ${path}; check that its directory exists and this user may write it`);
    default:
      return new PerstackError(`${path}: ${error.errstr ?? error.message}`);
  }
}

/** Runs `fn` in a write transaction (BEGIN IMMEDIATE: it takes the write lock up front, so it cannot deadlock). */
export function inTransaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (caught) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw caught;
  }
}

function userVersion(db: DatabaseSync): number {
  const row = db.prepare("PRAGMA user_version").get() as { user_version: number } | undefined;
  return row?.user_version ?? 0;
}

function migrate(db: DatabaseSync, path: string): void {
  // Checked again under the write lock: another process may have migrated between the two reads.
  if (userVersion(db) === MIGRATIONS.length) return;
  inTransaction(db, () => {
    const version = userVersion(db);
    if (version > MIGRATIONS.length) {
      throw new PerstackError(`${path} was written by a newer perstack (schema version ${version}, this one knows ${MIGRATIONS.length}); upgrade perstack`);
    }
    for (let i = version; i < MIGRATIONS.length; i++) db.exec(MIGRATIONS[i]!);
    // user_version is in the database header: it commits or rolls back with the migrations.
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
  });
}

/** The directory is created on first use, readable by this user only: it holds the server key and token hashes. */
function ensureDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (caught) {
    const code = (caught as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTDIR") throw new InvalidOptionError(`--data ${dataDir}: a file stands where that directory (or one above it) should be; give a directory`);
    throw new InvalidOptionError(`--data ${dataDir}: cannot create the directory (${code ?? (caught as Error).message}); give a directory this user may write`);
  }
  if (!statSync(dataDir).isDirectory()) throw new InvalidOptionError(`--data ${dataDir} is not a directory`);
}

/** `<data>/server.db`, created (with `<data>`) if missing, migrated to the latest schema. */
export function openServerDb(dataDir: string): DatabaseSync {
  ensureDataDir(dataDir);
  const path = join(dataDir, SERVER_DB_FILE);
  // SQLite would create the file with the umask's permissions; created here first it is 0600, and SQLite gives
  // the -wal and -shm files the database file's permissions.
  try {
    closeSync(openSync(path, "wx", 0o600));
  } catch (caught) {
    if ((caught as NodeJS.ErrnoException).code !== "EEXIST") throw explainDbError(caught, path);
  }
  const { DatabaseSync } = loadSqlite();
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { enableForeignKeyConstraints: true });
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.exec("PRAGMA journal_mode = WAL");
    // FULL: a tenant added or a token rotated stays so after a power loss (NORMAL may drop the last commits).
    db.exec("PRAGMA synchronous = FULL");
    migrate(db, path);
    return db;
  } catch (caught) {
    db?.close();
    throw explainDbError(caught, path);
  }
}
