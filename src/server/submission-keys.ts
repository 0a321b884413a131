// Submissions a client names with an Idempotency-Key header (POST /v1/runs, /v1/runs/{jobId}/continue), in the server's
// database (server-db.ts, migration 4). A key makes a submission safe to send again, and cancellable before its answer
// came: a client whose connection dropped, or whose user pressed Ctrl-C while the upload was on its way, cannot know
// whether the server took the run. Sent again, the key gets the run it made (never a second one); cancelled by its key
// (POST /v1/submissions/{key}/cancel), the run it made is cancelled, or, if it is still being taken, it is refused
// when it would be queued, or, if it never arrived, it is refused should it arrive later.
//
// One server process per database (serve's lock) and synchronous SQLite calls: between the check that a key is not
// cancelled and the run's queueing nothing else runs, so a cancellation is never lost between the two.
import type { DatabaseSync } from "node:sqlite";

/** What a key names: letters, digits, '-' and '_', 16 to 128 long (a UUID or 32 hex digits fit). */
export const SUBMISSION_KEY = /^[A-Za-z0-9_-]{16,128}$/;

/** Where a key stands when a submission naming it arrives. */
export type KeyState =
  /** Never seen: this submission takes it. */
  | { state: "new" }
  /** A submission with this key is being taken now (its upload unpacked, its config planned). */
  | { state: "pending" }
  /** It made the run of queue seq `seq`. */
  | { state: "made"; seq: number }
  /** Cancelled before it made a run. */
  | { state: "cancelled" };

interface Row {
  seq: number | null;
  cancelled: number;
}

export class SubmissionKeys {
  /** `db`: the server's database, migrated. */
  constructor(private readonly db: DatabaseSync) {}

  /** Takes the key for a submission now arriving, or says why it is taken already. */
  begin(tenant: string, key: string, now = Date.now()): KeyState {
    const inserted = this.db.prepare("INSERT OR IGNORE INTO submission_keys (tenant, key, created_at) VALUES (?, ?, ?)").run(tenant, key, now);
    if (inserted.changes === 1) return { state: "new" };
    const row = this.row(tenant, key)!;
    if (row.seq !== null) return { state: "made", seq: row.seq };
    return row.cancelled ? { state: "cancelled" } : { state: "pending" };
  }

  /** Whether the key was cancelled while its submission was being taken. */
  cancelled(tenant: string, key: string): boolean {
    return this.row(tenant, key)?.cancelled === 1;
  }

  /** The submission made run `seq`. */
  made(tenant: string, key: string, seq: number): void {
    this.db.prepare("UPDATE submission_keys SET seq = ? WHERE tenant = ? AND key = ?").run(seq, tenant, key);
  }

  /** The submission was refused (bad input): the key is free again, for the corrected one. Not if it was cancelled. */
  release(tenant: string, key: string): void {
    this.db.prepare("DELETE FROM submission_keys WHERE tenant = ? AND key = ? AND seq IS NULL AND cancelled = 0").run(tenant, key);
  }

  /**
   * Cancels the key: the run it made (its seq, for the caller to cancel), or a mark that refuses its submission,
   * whether it is being taken now or arrives later.
   */
  cancel(tenant: string, key: string, now = Date.now()): { seq?: number } {
    this.db.prepare("INSERT OR IGNORE INTO submission_keys (tenant, key, cancelled, created_at) VALUES (?, ?, 1, ?)").run(tenant, key, now);
    const row = this.row(tenant, key)!;
    if (row.seq !== null) return { seq: row.seq };
    this.db.prepare("UPDATE submission_keys SET cancelled = 1 WHERE tenant = ? AND key = ?").run(tenant, key);
    return {};
  }

  private row(tenant: string, key: string): Row | undefined {
    return this.db.prepare("SELECT seq, cancelled FROM submission_keys WHERE tenant = ? AND key = ?").get(tenant, key) as Row | undefined;
  }
}
