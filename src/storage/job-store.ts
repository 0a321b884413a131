// perstack/jobs/<jobId>/: job.json, checkpoints/<id>.json, runs/<runId>/{run-setting.json, events.jsonl, raw.log}.
// JSON documents are replaced atomically (temp file + rename) so a reader or a crash never sees half a file;
// events and raw output are appended through streams so the collector never waits on the disk per line.
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join, relative, isAbsolute } from "node:path";
import { isSafeId } from "../model/ids.js";
import type { Checkpoint, Job, PerstackEvent } from "../model/perstack.js";

let tempCounter = 0;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
  await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  await rename(temp, path);
}

/**
 * Ids reach this class from the agent's stream (the built-in engine issues checkpoint and delegated run ids). The
 * collector validates them first; this is the last line: a path is only ever built from a safe id, and checked to
 * stay inside the job's directory.
 */
export class UnsafeJobPathError extends Error {}

export class JobStore {
  readonly jobDir: string;

  constructor(
    readonly perstackDir: string,
    readonly jobId: string,
  ) {
    this.jobDir = join(perstackDir, "jobs", checkedId(jobId, "job"));
    mkdirSync(join(this.jobDir, "checkpoints"), { recursive: true });
  }

  writeJob(job: Job): Promise<void> {
    return writeJsonAtomic(join(this.jobDir, "job.json"), job);
  }

  checkpointPath(checkpointId: string): string {
    return this.inside(join("checkpoints", `${checkedId(checkpointId, "checkpoint")}.json`));
  }

  hasCheckpoint(checkpointId: string): boolean {
    return existsSync(this.checkpointPath(checkpointId));
  }

  writeCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return writeJsonAtomic(this.checkpointPath(checkpoint.id), checkpoint);
  }

  runDir(runId: string): string {
    return this.inside(join("runs", checkedId(runId, "run")));
  }

  /** `logs: false` for a delegated run: the container's raw output and stderr belong to the job's root run. */
  openRun(runId: string, options: { logs?: boolean } = {}): RunFiles {
    return new RunFiles(this.runDir(runId), options);
  }

  private inside(rel: string): string {
    const path = join(this.jobDir, rel);
    const back = relative(this.jobDir, path);
    if (back === "" || back.startsWith("..") || isAbsolute(back)) throw new UnsafeJobPathError(`refusing a path outside ${this.jobDir}: ${rel}`);
    return path;
  }
}

function checkedId(id: string, what: string): string {
  if (!isSafeId(id)) throw new UnsafeJobPathError(`refusing ${what} id ${JSON.stringify(String(id).slice(0, 80))}: ids are letters, digits, '-' and '_'`);
  return id;
}

export class RunFiles {
  private readonly events: WriteStream;
  private readonly raw: WriteStream | undefined;
  private readonly stderr: WriteStream | undefined;

  constructor(
    readonly dir: string,
    options: { logs?: boolean } = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.events = createWriteStream(join(dir, "events.jsonl"), { flags: "a" });
    if (options.logs !== false) {
      this.raw = createWriteStream(join(dir, "raw.log"), { flags: "a" });
      this.stderr = createWriteStream(join(dir, "stderr.log"), { flags: "a" });
    }
  }

  writeSetting(setting: unknown): Promise<void> {
    return writeJsonAtomic(join(this.dir, "run-setting.json"), setting);
  }

  appendEvent(event: PerstackEvent): void {
    this.events.write(`${JSON.stringify(event)}\n`);
  }

  appendRaw(chunk: Buffer | string): void {
    this.raw?.write(chunk);
  }

  appendStderr(chunk: Buffer | string): void {
    this.stderr?.write(chunk);
  }

  /** Bytes written but not yet on disk, over all of this run's files. */
  backlog(): number {
    return [this.events, this.raw, this.stderr].reduce((sum, stream) => sum + (stream?.writableLength ?? 0), 0);
  }

  /** Resolves when every file whose buffer is full has drained. */
  async drained(): Promise<void> {
    await Promise.all(
      [this.events, this.raw, this.stderr].map((stream) =>
        stream && stream.writableNeedDrain ? new Promise<void>((resolve) => stream.once("drain", () => resolve())) : undefined,
      ),
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      [this.events, this.raw, this.stderr].map(
        (stream) =>
          stream && new Promise<void>((resolve) => stream.end(() => resolve())),
      ),
    );
  }
}
