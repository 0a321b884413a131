// How times, durations, counts and costs read in the console: the same units as `perstack jobs` and `perstack log`
// (src/history/display-units.ts), in the reader's local time.

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** 2025-06-01 14:03 (today: 14:03:07) */
export function formatTime(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return "—";
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "—";
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (new Date(now).toDateString() === d.toDateString()) return `${clock}:${pad(d.getSeconds())}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}`;
}

/** 14:03:07.120 */
export function formatClock(ms: number | undefined): string {
  if (ms === undefined) return "";
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "";
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** 0.4s, 12.3s, 4m 05s, 2h 03m */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${pad(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${pad(Math.floor((seconds % 3600) / 60))}m`;
}

/** 12,345 */
export function formatCount(n: number | undefined): string {
  return n !== undefined && Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—";
}

/** $0.0123, $1.23; null is a model with no price (never a guess). */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null) return "n/a";
  if (usd === undefined || !Number.isFinite(usd)) return "—";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** 12.3 KiB */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** How long a run took, or has taken so far. */
export function runDuration(run: { startedAt?: number; finishedAt?: number; status: string }, now = Date.now()): number | undefined {
  if (run.startedAt === undefined) return undefined;
  if (run.finishedAt !== undefined) return run.finishedAt - run.startedAt;
  return run.status === "running" ? now - run.startedAt : undefined;
}

/** One line of at most `max` characters. */
export function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** "1 call", "3 calls" */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}
