// perstack/jobs/<jobId>/: job.json, checkpoints/<id>.json, runs/<runId>/{run-setting.json, events.jsonl, raw.log}.
// JSON documents are replaced atomically (temp file + rename) so a reader or a crash never sees half a file;
// events and raw output are appended through streams so the collector never waits on the disk per line.
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Checkpoint, Job, PerstackEvent } from "../model/perstack.js";

let tempCounter = 0;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const temp = `${path}.${process.pid}.${++tempCounter}.tmp`;
  await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  await rename(temp, path);
}

export class JobStore {
  readonly jobDir: string;

  constructor(
    readonly perstackDir: string,
    readonly jobId: string,
  ) {
    this.jobDir = join(perstackDir, "jobs", jobId);
    mkdirSync(join(this.jobDir, "checkpoints"), { recursive: true });
  }

  writeJob(job: Job): Promise<void> {
    return writeJsonAtomic(join(this.jobDir, "job.json"), job);
  }

  writeCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return writeJsonAtomic(join(this.jobDir, "checkpoints", `${checkpoint.id}.json`), checkpoint);
  }

  /** `logs: false` for a delegated run: the container's raw output and stderr belong to the job's root run. */
  openRun(runId: string, options: { logs?: boolean } = {}): RunFiles {
    return new RunFiles(join(this.jobDir, "runs", runId), options);
  }
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

  async close(): Promise<void> {
    await Promise.all(
      [this.events, this.raw, this.stderr].map(
        (stream) =>
          stream && new Promise<void>((resolve) => stream.end(() => resolve())),
      ),
    );
  }
}
