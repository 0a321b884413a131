// Issue 14: the server's queue starts runs fairly (server/run-queue.ts). One tenant's many submissions never keep
// another's one waiting behind them; per-tenant limits hold; positions and cancellation are exact.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunQueue } from "../../../src/server/run-queue.js";
import { openServerDb } from "../../../src/server/server-db.js";

function queue(): RunQueue {
  return new RunQueue(openServerDb(join(mkdtempSync(join(tmpdir(), "perstack-queue-")), "data")));
}

/** Starts runs as the scheduler would, `slots` at a time, finishing the oldest running one when full. */
function startOrder(q: RunQueue, slots: number, limitOf: (tenant: string) => number): string[] {
  const order: string[] = [];
  const running: number[] = [];
  for (let clock = 1; clock < 1_000; clock++) {
    const next = q.next(limitOf);
    if (next && running.length < slots) {
      expect(q.markRunning(next.seq, clock)).toBe(true);
      running.push(next.seq);
      order.push(next.jobId);
      continue;
    }
    const done = running.shift();
    if (done === undefined) break;
    q.markFinished(done, "completed", {}, clock);
  }
  return order;
}

describe("the run queue", () => {
  it("shares slots fairly: a tenant's one submission starts before another's earlier many", () => {
    const q = queue();
    for (let i = 0; i < 6; i++) q.submit("big", `big${i}`, "{}", i);
    q.submit("small", "small0", "{}", 10);
    q.submit("other", "other0", "{}", 11);
    const order = startOrder(q, 1, () => Infinity);
    expect(order.slice(0, 3).sort()).toEqual(["big0", "other0", "small0"]);
    expect(order).toHaveLength(8);
    // Each tenant's own runs start in submission order.
    expect(order.filter((id) => id.startsWith("big"))).toEqual(["big0", "big1", "big2", "big3", "big4", "big5"]);
  });

  it("never starts more of a tenant's runs than its limit, and none of a tenant whose limit is 0", () => {
    const q = queue();
    for (let i = 0; i < 4; i++) q.submit("capped", `c${i}`, "{}", i);
    q.submit("gone", "g0", "{}", 5);
    const limit = (tenant: string) => (tenant === "capped" ? 2 : 0);
    const first = q.next(limit)!;
    q.markRunning(first.seq);
    const second = q.next(limit)!;
    q.markRunning(second.seq);
    expect(q.next(limit)).toBeUndefined();
    expect(q.counts()).toEqual({ queued: 3, running: 2 });
  });

  it("says a queued run's position, lets a queued run be cancelled once, and keeps tenants apart", () => {
    const q = queue();
    const a = q.submit("a", "a0", "{}", 1);
    const b = q.submit("b", "b0", "{}", 2);
    expect(q.position(a)).toBe(1);
    expect(q.position(b)).toBe(2);
    expect(q.get("a", "b0")).toBeUndefined();
    expect(q.cancelQueued(a.seq)).toBe(true);
    expect(q.cancelQueued(a.seq)).toBe(false);
    expect(q.position(q.get("b", "b0")!)).toBe(1);
    expect(q.markRunning(a.seq)).toBe(false);
    expect(q.list("a", { limit: 10 }).map((r) => r.status)).toEqual(["cancelled"]);
  });

  it("keeps a job's continuations as invocations: the job is its latest, listed once, its cost split by invocation", () => {
    const q = queue();
    const first = q.submit("a", "j1", "{}", 1);
    q.markRunning(first.seq, 2);
    q.markFinished(first.seq, "completed", { costUsd: 0.5 }, 3);
    const second = q.submit("a", "j1", "{}", 4);
    expect(q.get("a", "j1")!.seq).toBe(second.seq);
    expect(q.first("a", "j1")!.seq).toBe(first.seq);
    expect(q.list("a", { limit: 10 }).map((r) => r.seq)).toEqual([second.seq]);
    expect(q.costBefore("j1", second.seq)).toBe(0.5);
  });

  it("a tenant's daily budget left is its budget less today's finished costs and what running runs were allowed", () => {
    const q = queue();
    const day = Date.UTC(2026, 10, 29, 12);
    const done = q.submit("a", "j1", "{}", day);
    q.markRunning(done.seq, day);
    q.markFinished(done.seq, "completed", { costUsd: 1.25 }, day + 1);
    const yesterday = q.submit("a", "j0", "{}", day - 86_400_000);
    q.markRunning(yesterday.seq, day - 86_400_000);
    q.markFinished(yesterday.seq, "completed", { costUsd: 100 }, day - 86_400_000 + 1);
    const going = q.submit("a", "j2", "{}", day);
    q.markRunning(going.seq, day, 2);
    expect(q.remainingBudget("a", 5, day + 10)).toBeCloseTo(1.75);
    expect(q.remainingBudget("a", undefined, day + 10)).toBeUndefined();
    expect(q.remainingBudget("b", 5, day + 10)).toBe(5);
  });
});
