// PURE: the terminal table of a comparison: one row per runtime, medians with (min–max) over repeats, then the
// skipped runtimes and where the files are. Text only; the CLI makes it terminal-safe.
import { formatDuration } from "../history/display-units.js";
import type { Comparison, RuntimeSummary, Spread } from "./comparison.js";
import { formatTokens, formatUsd } from "./report-charts.js";

const COLUMNS = ["runtime", "status", "wall", "steps", "tools", "in", "out", "cached", "cost", "retries", "blocked"] as const;

/** The median, and (min–max) when runs differ. */
function spreadText(spread: Spread, runs: number, format: (n: number) => string): string {
  const median = format(spread.median);
  if (runs < 2 || spread.min === spread.max) return median;
  return `${median} (${format(spread.min)}–${format(spread.max)})`;
}

export function statusText(summary: RuntimeSummary): string {
  if (summary.checksPassed !== undefined) return `${summary.checksPassed}/${summary.runs} passed`;
  return summary.runs === 1 ? (summary.completed === 1 ? "completed" : "not completed") : `${summary.completed}/${summary.runs} completed`;
}

function costText(summary: RuntimeSummary): string {
  if (!summary.costUsd) return "n/a";
  const text = spreadText(summary.costUsd, summary.runs, formatUsd);
  return summary.costSource === "self-reported" ? `${text}*` : text;
}

export function summaryRows(comparison: Comparison): string[][] {
  return comparison.summary.map((s) => [
    s.runtime,
    statusText(s),
    spreadText(s.wallTimeMs, s.runs, formatDuration),
    spreadText(s.steps, s.runs, formatTokens),
    spreadText(s.toolCalls, s.runs, formatTokens),
    spreadText(s.inputTokens, s.runs, formatTokens),
    spreadText(s.outputTokens, s.runs, formatTokens),
    spreadText(s.cachedInputTokens, s.runs, formatTokens),
    costText(s),
    spreadText(s.retries, s.runs, formatTokens),
    spreadText(s.blockedEgress, s.runs, formatTokens),
  ]);
}

export function formatComparisonTable(comparison: Comparison, files: { json: string; html: string }): string {
  const rows = [[...COLUMNS], ...summaryRows(comparison)];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 || i === 1 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ").trimEnd();
  const out = [line(rows[0]!), ...rows.slice(1).map(line)];
  if (comparison.summary.length === 0) out.push("(no runtime ran)");
  if (comparison.repeat > 1) out.push(`medians of ${comparison.repeat} runs each, (min–max) where they differ`);
  if (comparison.summary.some((s) => s.costSource === "self-reported" && s.costUsd)) out.push("* cost as the CLI reported it (not metered by the provider gateway)");
  for (const skip of comparison.skipped) out.push(`skipped ${skip.runtime}: ${skip.reason}`);
  for (const run of comparison.runs) if (run.status === "failedToStart") out.push(`${run.runtime} #${run.repeat + 1} did not start: ${run.error ?? "unknown"}`);
  for (const warning of comparison.warnings) out.push(`note: ${warning}`);
  out.push(`comparison ${comparison.id}: ${files.json}`, `report: ${files.html}`);
  return `${out.join("\n")}\n`;
}
