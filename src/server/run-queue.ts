// The server's queue of submitted runs, in its SQLite database (server-db.ts, migration 2): it outlives the server process, so a
// restart finds what was queued still queued, and what was running to be reconciled (scheduler.ts).
//
// Which run starts next is fair across tenants: among tenants below their own concurrency limit, the one with the
// fewest runs going, then the one that started a run least recently, gets its oldest submission started. One
// tenant's hundred submissions so never keep another's one waiting behind them.
import type { DatabaseSync } from "node:sqlite";

export type QueueStatus = "queued" | "running" | "finished" | "cancelled";

export interface QueuedRun {
  jobId: string;
  tenant: string;
  /** Submission order, over all tenants. */
  seq: number;
  status: QueueStatus;
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** The job's final status once finished (job.json's), or why it never ran. */
  outcome?: string;
  /** What was submitted (the config text and query; the workspace is on disk). */
  request: string;
}

interface Row {
  job_id: string;
  tenant: string;
  seq: number;
  status: string;
  submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  outcome: string | null;
  request: string;
}


function fromRow(row: Row): QueuedRun {
  return {
    jobId: row.job_id,
    tenant: row.tenant,
    seq: row.seq,
    status: row.status as QueueStatus,
    submittedAt: row.submitted_at,
    ...(row.started_at !== null ? { startedAt: row.started_at } : {}),
    ...(row.finished_at !== null ? { finishedAt: row.finished_at } : {}),
    ...(row.outcome !== null ? { outcome: row.outcome } : {}),
    request: row.request,
  };
}

export class RunQueue {
  /** `db`: the server's database, migrated (server-db.ts holds the table). */
  constructor(private readonly db: DatabaseSync) {}

  submit(tenant: string, jobId: string, request: string, now = Date.now()): QueuedRun {
    this.db.prepare("INSERT INTO runs (job_id, tenant, status, submitted_at, request) VALUES (?, ?, 'queued', ?, ?)").run(jobId, tenant, now, request);
    return this.get(tenant, jobId)!;
  }

  /** The tenant's own run; another tenant's is undefined, exactly like one that does not exist. */
  get(tenant: string, jobId: string): QueuedRun | undefined {
    const row = this.db.prepare("SELECT * FROM runs WHERE job_id = ? AND tenant = ?").get(jobId, tenant) as Row | undefined;
    return row && fromRow(row);
  }

  /** 1 for the next queued run to start among all tenants' (in submission order), undefined once it is not queued. */
  position(run: QueuedRun): number | undefined {
    if (run.status !== "queued") return undefined;
    const { ahead } = this.db.prepare("SELECT COUNT(*) AS ahead FROM runs WHERE status = 'queued' AND seq < ?").get(run.seq) as { ahead: number };
    return ahead + 1;
  }

  /** The tenant's runs, newest first, `limit` at a time from before `beforeSeq`. */
  list(tenant: string, options: { status?: QueueStatus; limit: number; beforeSeq?: number }): QueuedRun[] {
    const where = ["tenant = ?"];
    const args: Array<string | number> = [tenant];
    if (options.status) {
      where.push("status = ?");
      args.push(options.status);
    }
    if (options.beforeSeq !== undefined) {
      where.push("seq < ?");
      args.push(options.beforeSeq);
    }
    const rows = this.db.prepare(`SELECT * FROM runs WHERE ${where.join(" AND ")} ORDER BY seq DESC LIMIT ?`).all(...args, options.limit) as unknown as Row[];
    return rows.map(fromRow);
  }

  byStatus(status: QueueStatus): QueuedRun[] {
    return (this.db.prepare("SELECT * FROM runs WHERE status = ? ORDER BY seq").all(status) as unknown as Row[]).map(fromRow);
  }

  /**
   * The run to start next, fairly (see the top of this file), or undefined when none may start: nothing queued, or
   * every tenant with queued runs at its limit. `limitOf` gives a tenant's concurrency limit.
   */
  next(limitOf: (tenant: string) => number): QueuedRun | undefined {
    const running = new Map<string, { count: number; lastStart: number }>();
    for (const row of this.db.prepare("SELECT tenant, COUNT(*) AS count, MAX(started_at) AS last FROM runs WHERE status = 'running' GROUP BY tenant").all() as Array<{ tenant: string; count: number; last: number | null }>) {
      running.set(row.tenant, { count: row.count, lastStart: row.last ?? 0 });
    }
    const lastStarts = new Map<string, number>();
    for (const row of this.db.prepare("SELECT tenant, MAX(started_at) AS last FROM runs WHERE started_at IS NOT NULL GROUP BY tenant").all() as Array<{ tenant: string; last: number }>) {
      lastStarts.set(row.tenant, row.last);
    }
    const waiting = this.db.prepare("SELECT tenant, MIN(seq) AS seq FROM runs WHERE status = 'queued' GROUP BY tenant").all() as Array<{ tenant: string; seq: number }>;
    let best: { tenant: string; seq: number; count: number; lastStart: number } | undefined;
    for (const { tenant, seq } of waiting) {
      const count = running.get(tenant)?.count ?? 0;
      if (count >= limitOf(tenant)) continue;
      const lastStart = lastStarts.get(tenant) ?? 0;
      const better = !best || count < best.count || (count === best.count && (lastStart < best.lastStart || (lastStart === best.lastStart && seq < best.seq)));
      if (better) best = { tenant, seq, count, lastStart };
    }
    if (!best) return undefined;
    const row = this.db.prepare("SELECT * FROM runs WHERE seq = ?").get(best.seq) as Row | undefined;
    return row && fromRow(row);
  }

  /** queued -> running; false if it was no longer queued (cancelled meanwhile). */
  markRunning(jobId: string, now = Date.now()): boolean {
    return this.db.prepare("UPDATE runs SET status = 'running', started_at = ? WHERE job_id = ? AND status = 'queued'").run(now, jobId).changes === 1;
  }

  markFinished(jobId: string, outcome: string, now = Date.now()): void {
    this.db.prepare("UPDATE runs SET status = 'finished', finished_at = ?, outcome = ? WHERE job_id = ?").run(now, outcome, jobId);
  }

  /** queued -> cancelled; false if it had started (or ended) meanwhile. */
  cancelQueued(jobId: string, now = Date.now()): boolean {
    return this.db.prepare("UPDATE runs SET status = 'cancelled', finished_at = ?, outcome = 'cancelled' WHERE job_id = ? AND status = 'queued'").run(now, jobId).changes === 1;
  }

  counts(): { queued: number; running: number } {
    const rows = this.db.prepare("SELECT status, COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running') GROUP BY status").all() as Array<{ status: string; n: number }>;
    const of = (status: string) => rows.find((r) => r.status === status)?.n ?? 0;
    return { queued: of("queued"), running: of("running") };
  }

  /** Finished runs per final status, for /metrics. */
  outcomes(): Array<{ outcome: string; count: number }> {
    return this.db.prepare("SELECT outcome, COUNT(*) AS count FROM runs WHERE status IN ('finished', 'cancelled') GROUP BY outcome").all() as Array<{ outcome: string; count: number }>;
  }
}
