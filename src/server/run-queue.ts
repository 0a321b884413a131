// The server's queue of submitted runs, in its SQLite database (server-db.ts, migration 2): it outlives the server process, so a
// restart finds what was queued still queued, and what was running to be reconciled (scheduler.ts).
//
// Which run starts next is fair across tenants: among tenants below their own concurrency limit, the one with the
// fewest runs going, then the one that started a run least recently, gets its oldest submission started. One
// tenant's hundred submissions so never keep another's one waiting behind them.
import type { DatabaseSync } from "node:sqlite";

export type QueueStatus = "queued" | "running" | "finished" | "cancelled";

/** One invocation of a job: its submission, or a continuation of it. */
export interface QueuedRun {
  jobId: string;
  tenant: string;
  /** Submission order, over all tenants; identifies the invocation. */
  seq: number;
  status: QueueStatus;
  submittedAt: number;
  startedAt?: number;
  finishedAt?: number;
  /** The job's final status once finished (job.json's), or why it never ran. */
  outcome?: string;
  /** Why it ended as it did when the job's record cannot say (refused for a spent budget, cancelled). */
  reason?: string;
  /** The model spend it was allowed (the tenant's daily budget left when it started), in USD. */
  allocatedUsd?: number;
  /** What it cost (the gateway's meter), once finished. */
  costUsd?: number;
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
  reason: string | null;
  allocated_usd: number | null;
  cost_usd: number | null;
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
    ...(row.reason !== null ? { reason: row.reason } : {}),
    ...(row.allocated_usd !== null ? { allocatedUsd: row.allocated_usd } : {}),
    ...(row.cost_usd !== null ? { costUsd: row.cost_usd } : {}),
    request: row.request,
  };
}

export class RunQueue {
  /** `db`: the server's database, migrated (server-db.ts holds the table). */
  constructor(private readonly db: DatabaseSync) {}

  submit(tenant: string, jobId: string, request: string, now = Date.now()): QueuedRun {
    const { seq } = this.db.prepare("INSERT INTO runs (job_id, tenant, status, submitted_at, request) VALUES (?, ?, 'queued', ?, ?) RETURNING seq").get(jobId, tenant, now, request) as { seq: number };
    return this.bySeq(seq)!;
  }

  /** The tenant's job, as its latest invocation; another tenant's is undefined, exactly like one that does not exist. */
  get(tenant: string, jobId: string): QueuedRun | undefined {
    const row = this.db.prepare("SELECT * FROM runs WHERE job_id = ? AND tenant = ? ORDER BY seq DESC LIMIT 1").get(jobId, tenant) as Row | undefined;
    return row && fromRow(row);
  }

  /** The job's first invocation: what was submitted (config, expert) for every later one. */
  first(tenant: string, jobId: string): QueuedRun | undefined {
    const row = this.db.prepare("SELECT * FROM runs WHERE job_id = ? AND tenant = ? ORDER BY seq LIMIT 1").get(jobId, tenant) as Row | undefined;
    return row && fromRow(row);
  }

  bySeq(seq: number): QueuedRun | undefined {
    const row = this.db.prepare("SELECT * FROM runs WHERE seq = ?").get(seq) as Row | undefined;
    return row && fromRow(row);
  }

  /** 1 for the next queued run to start among all tenants' (in submission order), undefined once it is not queued. */
  position(run: QueuedRun): number | undefined {
    if (run.status !== "queued") return undefined;
    const { ahead } = this.db.prepare("SELECT COUNT(*) AS ahead FROM runs WHERE status = 'queued' AND seq < ?").get(run.seq) as { ahead: number };
    return ahead + 1;
  }

  /** The tenant's jobs (each as its latest invocation), newest first, `limit` at a time from before `beforeSeq`. */
  list(tenant: string, options: { status?: QueueStatus; limit: number; beforeSeq?: number }): QueuedRun[] {
    const where = ["tenant = ?", "seq = (SELECT MAX(seq) FROM runs AS later WHERE later.job_id = runs.job_id)"];
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
    return this.bySeq(best.seq);
  }

  /** queued -> running, with the spend it may use; false if it was no longer queued (cancelled meanwhile). */
  markRunning(seq: number, now = Date.now(), allocatedUsd?: number): boolean {
    return this.db.prepare("UPDATE runs SET status = 'running', started_at = ?, allocated_usd = ? WHERE seq = ? AND status = 'queued'").run(now, allocatedUsd ?? null, seq).changes === 1;
  }

  /** running -> queued again: its process died before the run began (nothing of it ran). */
  requeue(seq: number): void {
    this.db.prepare("UPDATE runs SET status = 'queued', started_at = NULL, allocated_usd = NULL WHERE seq = ? AND status = 'running'").run(seq);
  }

  markFinished(seq: number, outcome: string, details: { costUsd?: number; reason?: string } = {}, now = Date.now()): void {
    this.db.prepare("UPDATE runs SET status = 'finished', finished_at = ?, outcome = ?, cost_usd = ?, reason = COALESCE(?, reason) WHERE seq = ?").run(now, outcome, details.costUsd ?? null, details.reason ?? null, seq);
  }

  /** queued -> cancelled; false if it had started (or ended) meanwhile. */
  cancelQueued(seq: number, reason = "cancelled by the tenant", now = Date.now()): boolean {
    return this.db.prepare("UPDATE runs SET status = 'cancelled', finished_at = ?, outcome = 'cancelled', reason = ? WHERE seq = ? AND status = 'queued'").run(now, reason, seq).changes === 1;
  }

  /**
   * What the tenant's runs may still spend today (UTC): its daily budget, less what finished runs cost today, less
   * what the runs going now were allowed. Undefined when it has no budget.
   */
  remainingBudget(tenant: string, budget: number | undefined, now = Date.now()): number | undefined {
    if (budget === undefined) return undefined;
    const dayStart = now - (now % 86_400_000);
    const { spent } = this.db.prepare("SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM runs WHERE tenant = ? AND status = 'finished' AND finished_at >= ?").get(tenant, dayStart) as { spent: number };
    const { held } = this.db.prepare("SELECT COALESCE(SUM(allocated_usd), 0) AS held FROM runs WHERE tenant = ? AND status = 'running'").get(tenant) as { held: number };
    return budget - spent - held;
  }

  /** Per tenant, what finished runs cost today (UTC), for /metrics. */
  spendToday(now = Date.now()): Array<{ tenant: string; usd: number }> {
    const dayStart = now - (now % 86_400_000);
    return this.db.prepare("SELECT tenant, COALESCE(SUM(cost_usd), 0) AS usd FROM runs WHERE status = 'finished' AND finished_at >= ? GROUP BY tenant").all(dayStart) as Array<{ tenant: string; usd: number }>;
  }

  /** Durations (ms) of runs that finished, for /metrics. */
  durations(): number[] {
    return (this.db.prepare("SELECT finished_at - started_at AS ms FROM runs WHERE status = 'finished' AND started_at IS NOT NULL").all() as Array<{ ms: number }>).map((r) => r.ms);
  }

  /** What the job's invocations before `seq` cost, together (job.json's metered cost covers them all). */
  costBefore(jobId: string, seq: number): number {
    return (this.db.prepare("SELECT COALESCE(SUM(cost_usd), 0) AS usd FROM runs WHERE job_id = ? AND seq < ?").get(jobId, seq) as { usd: number }).usd;
  }

  /** Submissions of the tenant since `since`, for its rate limit. */
  submittedSince(tenant: string, since: number): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM runs WHERE tenant = ? AND submitted_at >= ?").get(tenant, since) as { n: number }).n;
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
