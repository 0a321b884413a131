// `perstack serve`: the run-level API for many tenants on one machine (src/server/). Loaded only when it runs.
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DataDirInUseError, InvalidOptionError } from "../errors.js";
import { overridesFromEnv, resolveBaseImages } from "../sandbox/base-images.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { buildApi } from "../server/api.js";
import { openServerDb } from "../server/server-db.js";
import { RunQueue } from "../server/run-queue.js";
import { SubmissionKeys } from "../server/submission-keys.js";
import { ServerRuns, SHARED_SETTINGS } from "../server/server-runs.js";
import { loadServerKey } from "../server/server-key.js";
import { SERVER_DB_FILE } from "../server/server-db.js";
import { TenantStore } from "../server/tenant-store.js";
import { checkAllowEntries } from "../server/upstream-policy.js";
import { describeHolder, ProcessLock } from "../storage/process-lock.js";
import type { BaseImage, BaseImageRole } from "../plan/sandbox-plan.js";

export interface ServeOptions {
  host: string;
  port: string;
  data: string;
  maxConcurrent: string;
  maxSubmissionsPerMinute: string;
  tlsCert?: string;
  tlsKey?: string;
  /** --allow-private-upstream, repeatable. */
  allowPrivateUpstream?: string[];
}

const MIB = 1024 * 1024;
/** In the data directory: names the perstack serve working on it (storage/process-lock.ts). */
export const SERVE_LOCK_FILE = "serve.lock";

/** How long resolved base images are reused: a bootstrap meanwhile is picked up by the next runs. */
const BASE_IMAGES_TTL_MS = 30_000;

export async function serveCommand(options: ServeOptions): Promise<void> {
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidOptionError(`--port ${options.port}: give a port number from 0 to 65535`);
  const maxConcurrent = Number(options.maxConcurrent);
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) throw new InvalidOptionError(`--max-concurrent ${options.maxConcurrent}: give a whole number of runs, at least 1`);
  const perMinute = Number(options.maxSubmissionsPerMinute);
  if (!Number.isInteger(perMinute) || perMinute < 1) throw new InvalidOptionError(`--max-submissions-per-minute ${options.maxSubmissionsPerMinute}: give a whole number, at least 1`);
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new InvalidOptionError("--tls-cert and --tls-key go together: give both, or neither (and terminate TLS in a reverse proxy)");
  const allowPrivateUpstream = checkAllowEntries(options.allowPrivateUpstream ?? []);
  const https = options.tlsCert && options.tlsKey ? { cert: readFileSync(resolve(options.tlsCert)), key: readFileSync(resolve(options.tlsKey)) } : undefined;
  const dataDir = resolve(options.data);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Two servers on one data directory would each take the other's running runs for a dead server's and reconcile
  // them (marking them finished, or clearing a job that had not begun), and run the same queue.
  const lock = ProcessLock.acquire(join(dataDir, SERVE_LOCK_FILE), {
    inUse: (holder) => new DataDirInUseError(`--data ${dataDir}: in use by another perstack serve (${describeHolder(holder)}); stop it first, or give this one another --data directory`),
    takeoverCutShort: (path) => new DataDirInUseError(`--data ${dataDir}: a takeover of a stopped server's lock was cut short; remove ${path} and start again`),
  });
  process.once("exit", () => lock.release());
  const db = openServerDb(dataDir);
  const tenants = new TenantStore(db, () => loadServerKey(dataDir), { dbPath: join(dataDir, SERVER_DB_FILE), dataDir });
  const queue = new RunQueue(db);
  const keys = new SubmissionKeys(db);
  const docker = await connectDocker();
  const settings = Object.fromEntries(SHARED_SETTINGS.flatMap((name) => (process.env[name] ? [[name, process.env[name]!]] : [])));
  let images: { at: number; value: Promise<Record<BaseImageRole, BaseImage>> } | undefined;
  const baseImages = () => {
    if (!images || Date.now() - images.at > BASE_IMAGES_TTL_MS) images = { at: Date.now(), value: resolveBaseImages(docker, overridesFromEnv(process.env)) };
    return images.value;
  };
  const log = (line: string) => process.stderr.write(`perstack serve: ${line}\n`);
  const runs = new ServerRuns({
    dataDir,
    docker,
    queue,
    keys,
    baseImages,
    maxConcurrent,
    tenant: (name) => tenants.get(name),
    secrets: (name) => tenants.secretValues(name),
    settings,
    allowPrivateUpstream,
    log,
  });
  const auditPath = join(dataDir, "audit.log");
  const api = await buildApi({
    db,
    runs,
    queue,
    authenticate: async (token) => (await tenants.authenticate(token))?.name,
    limits: { maxSubmissionsPerMinute: perMinute, maxBodyBytes: 64 * MIB, maxConfigBytes: 256 * 1024, maxQueryBytes: 256 * 1024, maxWorkspaceBytes: 512 * MIB, maxWorkspaceEntries: 100_000 },
    audit: (line) => appendFileSync(auditPath, `${line}\n`, { mode: 0o600 }),
    ...(https ? { https } : {}),
  });
  await runs.start();
  const address = await api.listen({ host: options.host, port });
  process.stdout.write(`perstack serve: listening on ${address} (data: ${dataDir})\nperstack serve: the console is at ${address}/ (sign in with a tenant's token)\n`);
  const stop = (signal: NodeJS.Signals) => {
    // Runs going on keep going in their sandboxes; the next start reconciles them (server-runs.ts).
    log(`${signal}: closing; runs still going are taken over by the next start`);
    void api.close().finally(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
