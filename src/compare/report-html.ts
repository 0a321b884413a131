// report.html: one Comparison as a self-contained page (no scripts, no fonts, nothing fetched), rendered from
// templates/compare/report.html.hbs. This module turns the Comparison into a view of ready-to-print strings and
// numbers; the template lays them out. Almost every string here came out of a sandbox, so the template only ever
// uses Handlebars' escaping `{{ }}`, and this module never builds markup itself: its strings are text, not HTML.
import Handlebars from "handlebars";
import type { CheckResult, Comparison, ComparisonRun, CostSource, FileChange, RuntimeSummary, Spread } from "./comparison.js";
import { buildCharts, formatTokens, formatUsd, RUNTIME_COLORS, type BarChart } from "./report-charts.js";
import { formatCount, formatDuration } from "../history/display-units.js";
import { readTemplateFile } from "../plan/templates.js";

const TEMPLATE = "templates/compare/report.html.hbs";

// Not plan/templates.ts's instance: that one renders Dockerfiles and YAML with escaping off. HTML wants it on.
const hb = Handlebars.create();
hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
hb.registerHelper("gt", (a: unknown, b: unknown) => typeof a === "number" && typeof b === "number" && a > b);
let compiled: Handlebars.TemplateDelegate<ReportView> | undefined;

/** The whole page for one comparison. Pure apart from reading the template once. */
export function renderReportHtml(comparison: Comparison): string {
  compiled ??= hb.compile<ReportView>(readTemplateFile(TEMPLATE), { strict: true });
  return compiled(reportView(comparison));
}

type Tone = "ok" | "warn" | "fail" | "neutral";

interface Cell {
  /** The median (or the only value). */
  value: string;
  /** "min–max", shown under the median when there were repeats and they differ. */
  range: string | null;
}

interface SummaryRowView {
  runtime: string;
  colorIndex: number;
  anchor: string;
  status: string;
  statusDetail: string | null;
  tone: Tone;
  wallTime: Cell;
  steps: Cell;
  toolCalls: Cell;
  inputTokens: Cell;
  outputTokens: Cell;
  cachedInputTokens: Cell;
  cost: Cell;
  costSource: string | null;
  retries: Cell;
  blockedEgress: Cell;
  blockedTone: Tone;
}

export type DiffLineKind = "header" | "hunk" | "add" | "del" | "context" | "meta";

export interface DiffLine {
  kind: DiffLineKind;
  oldNo: number | null;
  newNo: number | null;
  text: string;
}

export interface DiffFile {
  /** The file's path as the diff names it (b/ side, or a/ for a deletion). */
  title: string;
  added: number;
  removed: number;
  lines: DiffLine[];
}

interface RunView {
  anchor: string;
  runtime: string;
  colorIndex: number;
  label: string;
  jobId: string;
  status: string;
  tone: Tone;
  error: string | null;
  model: string;
  provider: string;
  facts: Array<{ label: string; value: string }>;
  toolCounts: Array<{ name: string; count: number }>;
  timeline: Array<{ at: string; name: string; nativeName: string | null; skillName: string | null; args: string; failed: boolean }>;
  timelineTruncated: number;
  finalAnswer: string | null;
  egress: Array<{ action: string; domain: string; port: number; count: number; blocked: boolean }>;
  check: (CheckResult & { verdict: string; tone: Tone; duration: string; exit: string }) | null;
  changes: {
    files: Array<FileChange & { stat: { added: number; removed: number } | null; note: string | null }>;
    diff: DiffFile[];
    truncated: boolean;
  } | null;
  workspaceDir: string | null;
}

interface ReportView {
  title: string;
  comparison: {
    id: string;
    expertKey: string;
    query: string;
    date: string;
    runtimes: Array<{ name: string; skipped: boolean; colorIndex: number }>;
    repeat: number;
    concurrency: number;
    check: string | null;
    fromJobs: boolean;
  };
  repeated: boolean;
  summary: SummaryRowView[];
  skipped: Comparison["skipped"];
  charts: BarChart[];
  runs: RunView[];
  provenance: {
    perstackVersion: string;
    runtimes: Array<{ runtime: string; cli: string; image: string }>;
    models: string[];
    pricing: { source: string; date: string; sha256: string } | null;
  };
  warnings: string[];
}

export function reportView(comparison: Comparison): ReportView {
  const orderOf = summaryOrder(comparison.summary);
  const colorOf = (runtime: string) => orderOf(runtime) % RUNTIME_COLORS;
  const anchors = new Map(comparison.runs.map((run) => [run.runtime, runAnchor(run)] as const));
  const repeated = comparison.summary.some((s) => s.runs > 1);
  const skipped = new Set(comparison.skipped.map((s) => s.runtime));
  return {
    title: `${comparison.expertKey} on ${comparison.summary.map((s) => s.runtime).join(", ") || "no runtime"}`,
    comparison: {
      id: comparison.id,
      expertKey: comparison.expertKey,
      query: comparison.query,
      date: formatUtc(comparison.createdAt),
      runtimes: comparison.runtimes.map((name) => ({ name, skipped: skipped.has(name), colorIndex: colorOf(name) })),
      repeat: comparison.repeat,
      concurrency: comparison.concurrency,
      check: comparison.check ?? null,
      fromJobs: comparison.fromJobs,
    },
    repeated,
    summary: comparison.summary.map((s) => summaryRow(s, colorOf(s.runtime), anchors.get(s.runtime) ?? "")),
    skipped: comparison.skipped,
    charts: buildCharts(comparison.summary),
    runs: [...comparison.runs]
      .sort((a, b) => orderOf(a.runtime) - orderOf(b.runtime) || a.repeat - b.repeat)
      .map((run) => runView(run, colorOf(run.runtime), comparison.repeat)),
    provenance: {
      perstackVersion: comparison.provenance.perstackVersion,
      runtimes: comparison.provenance.runtimes.map((r) => ({
        runtime: r.runtime,
        cli: r.cliPackage ? `${r.cliPackage}${r.cliVersion ? `@${r.cliVersion}` : ""}` : "built in",
        image: r.image ?? "not recorded",
      })),
      models: comparison.provenance.models,
      pricing: comparison.provenance.pricing
        ? { source: comparison.provenance.pricing.source, date: comparison.provenance.pricing.date ?? "undated", sha256: comparison.provenance.pricing.sha256 }
        : null,
    },
    warnings: comparison.warnings,
  };
}

/** A runtime's place in the summary: it orders the run sections and picks the colour the table and charts use. */
function summaryOrder(summary: RuntimeSummary[]): (runtime: string) => number {
  const index = new Map(summary.map((s, i) => [s.runtime, i] as const));
  return (runtime) => index.get(runtime) ?? summary.length;
}

/** An id fit for a fragment link whatever the runtime's name holds. */
function runAnchor(run: Pick<ComparisonRun, "runtime" | "repeat">): string {
  return `run-${run.runtime.replace(/[^A-Za-z0-9_-]/g, "-")}-${run.repeat + 1}`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** UTC, so the same comparison renders the same page on every machine. */
export function formatUtc(ms: number): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "unknown date";
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

function cell(spread: Spread, format: (n: number) => string, runs: number): Cell {
  const value = format(spread.median);
  if (runs <= 1) return { value, range: null };
  const min = format(spread.min);
  const max = format(spread.max);
  return { value, range: min === max ? null : `${min}–${max}` };
}

const COST_SOURCE_LABEL: Record<CostSource, string | null> = { metered: "metered", "self-reported": "self-reported", none: null };

function summaryRow(s: RuntimeSummary, colorIndex: number, anchor: string): SummaryRowView {
  const checked = s.checksPassed !== undefined;
  const good = checked ? s.checksPassed! : s.completed;
  const tone: Tone = s.runs === 0 ? "neutral" : good === s.runs ? "ok" : good === 0 ? "fail" : "warn";
  const count = (n: number) => formatCount(n);
  return {
    runtime: s.runtime,
    colorIndex,
    anchor,
    status: checked ? `${s.checksPassed}/${s.runs} passed` : `${s.completed}/${s.runs} completed`,
    statusDetail: checked ? `${s.completed}/${s.runs} completed` : null,
    tone,
    wallTime: cell(s.wallTimeMs, formatDuration, s.runs),
    steps: cell(s.steps, count, s.runs),
    toolCalls: cell(s.toolCalls, count, s.runs),
    inputTokens: cell(s.inputTokens, count, s.runs),
    outputTokens: cell(s.outputTokens, count, s.runs),
    cachedInputTokens: cell(s.cachedInputTokens, count, s.runs),
    cost: s.costUsd ? cell(s.costUsd, formatUsd, s.runs) : { value: "n/a", range: null },
    costSource: s.costUsd ? COST_SOURCE_LABEL[s.costSource] : null,
    retries: cell(s.retries, count, s.runs),
    blockedEgress: cell(s.blockedEgress, count, s.runs),
    blockedTone: s.blockedEgress.max > 0 ? "warn" : "neutral",
  };
}

function runTone(run: ComparisonRun): Tone {
  if (run.status !== "completed") return "fail";
  if (run.check && !run.check.passed) return "fail";
  return "ok";
}

function runView(run: ComparisonRun, colorIndex: number, repeat: number): RunView {
  const usage = run.metered?.usage ?? run.selfReported.usage;
  const costSource = COST_SOURCE_LABEL[run.costSource];
  return {
    anchor: runAnchor(run),
    runtime: run.runtime,
    colorIndex,
    label: repeat > 1 ? `run ${run.repeat + 1} of ${repeat}` : "run",
    jobId: run.jobId,
    status: run.status,
    tone: runTone(run),
    error: run.error ?? null,
    model: run.model,
    provider: run.provider,
    facts: [
      { label: "Wall time", value: formatDuration(run.wallTimeMs) },
      { label: "Steps", value: formatCount(run.steps) },
      { label: "Tool calls", value: formatCount(run.toolCallCount) },
      { label: "Tokens in / out / cached", value: `${formatTokens(usage.inputTokens)} / ${formatTokens(usage.outputTokens)} / ${formatTokens(usage.cachedInputTokens)}` },
      { label: "Cost", value: run.costUsd === null ? "n/a" : `${formatUsd(run.costUsd)}${costSource ? ` (${costSource})` : ""}` },
      { label: "Retries", value: formatCount(run.retries) },
      { label: "Blocked egress", value: formatCount(run.blockedEgress) },
    ],
    toolCounts: Object.entries(run.toolCalls)
      .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
      .map(([name, count]) => ({ name, count })),
    timeline: run.timeline.map((call) => ({
      at: `+${formatDuration(call.atMs)}`,
      name: call.name,
      nativeName: call.nativeName ?? null,
      skillName: call.skillName ?? null,
      args: prettyArgs(call.args),
      failed: call.failed === true,
    })),
    timelineTruncated: run.timelineTruncated,
    finalAnswer: run.finalAnswer ?? null,
    egress: [...run.egress]
      .sort((a, b) => (a.action === b.action ? b.count - a.count : a.action === "blocked" ? -1 : 1))
      .map((d) => ({ action: d.action, domain: d.domain, port: d.port, count: d.count, blocked: d.action === "blocked" })),
    check: run.check ? checkView(run.check) : null,
    changes: run.changes
      ? {
          files: run.changes.files.map((file) => ({ ...file, stat: fileStat(file), note: fileNote(file) })),
          diff: parseUnifiedDiff(run.changes.patch),
          truncated: run.changes.patchTruncated,
        }
      : null,
    workspaceDir: run.workspaceDir ?? null,
  };
}

function checkView(check: CheckResult): NonNullable<RunView["check"]> {
  return {
    ...check,
    verdict: check.timedOut ? "timed out" : check.passed ? "passed" : "failed",
    tone: check.passed ? "ok" : "fail",
    duration: formatDuration(check.durationMs),
    exit: check.exitCode === null ? "none" : String(check.exitCode),
  };
}

/** Arguments are clipped JSON; indent them when they still parse, show them as they are when clipping broke them. */
function prettyArgs(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

function fileStat(file: FileChange): { added: number; removed: number } | null {
  return file.kind === "text" ? { added: file.added ?? 0, removed: file.removed ?? 0 } : null;
}

function fileNote(file: FileChange): string | null {
  const size = file.bytesAfter ?? file.bytesBefore;
  const bytes = size === undefined ? "" : ` (${formatCount(size)} bytes)`;
  if (file.kind === "binary") return `binary${bytes}`;
  if (file.kind === "too-large") return `too large to show${bytes}`;
  if (file.kind === "special") return "not a regular file";
  return null;
}

/**
 * Splits compare's unified diff (git-style, several files) into files and numbered lines for the diff viewer.
 * It only classifies lines: hunk headers give the starting line numbers and how many lines each side has left, so
 * a removed line whose text starts with "-- " is not mistaken for the next file's header.
 */
export function parseUnifiedDiff(patch: string): DiffFile[] {
  const files: DiffFile[] = [];
  let file: DiffFile | undefined;
  let oldNo = 0;
  let newNo = 0;
  let oldLeft = 0;
  let newLeft = 0;
  let titleFromGit = "";
  let oldPath = "";

  const open = (title: string) => {
    file = { title, added: 0, removed: 0, lines: [] };
    files.push(file);
    titleFromGit = title;
    oldPath = "";
  };
  const push = (kind: DiffLineKind, text: string, old: number | null = null, next: number | null = null) => {
    if (!file) open("");
    file!.lines.push({ kind, oldNo: old, newNo: next, text });
  };

  const lines = patch.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  for (const line of lines) {
    const inHunk = oldLeft > 0 || newLeft > 0;
    if (inHunk) {
      const sign = line[0];
      if (sign === "+" && newLeft > 0) {
        push("add", line, null, newNo++);
        newLeft--;
        file!.added++;
        continue;
      }
      if (sign === "-" && oldLeft > 0) {
        push("del", line, oldNo++, null);
        oldLeft--;
        file!.removed++;
        continue;
      }
      // An empty line in a hunk is a context line whose leading space was stripped (editors do that).
      if ((sign === " " || line === "") && oldLeft > 0 && newLeft > 0) {
        push("context", line, oldNo++, newNo++);
        oldLeft--;
        newLeft--;
        continue;
      }
      if (sign === "\\") {
        push("meta", line);
        continue;
      }
      // The counts say the hunk is over for one side; anything else ends it.
      oldLeft = newLeft = 0;
    }
    if (line.startsWith("\\")) {
      push("meta", line);
      continue;
    }
    const hunk = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (hunk && file) {
      oldNo = Number(hunk[1]);
      newNo = Number(hunk[3]);
      oldLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      newLeft = hunk[4] === undefined ? 1 : Number(hunk[4]);
      push("hunk", line);
      continue;
    }
    if (line.startsWith("diff --git ")) {
      open(gitTitle(line));
      push("header", line);
      continue;
    }
    if (line.startsWith("--- ")) {
      // A plain (non-git) diff has no "diff --git" line: its "---" line starts the next file.
      if (!file || file.lines.some((l) => l.kind === "hunk")) open("");
      oldPath = stripSide(line.slice(4), "a/");
      push("header", line);
      continue;
    }
    if (line.startsWith("+++ ") && file) {
      const newPath = stripSide(line.slice(4), "b/");
      file.title = newPath !== "/dev/null" ? newPath : oldPath !== "/dev/null" && oldPath ? oldPath : titleFromGit;
      push("header", line);
      continue;
    }
    push(file && !file.lines.some((l) => l.kind === "hunk") ? "header" : "meta", line);
  }
  return files;
}

function gitTitle(line: string): string {
  // "diff --git a/x b/x": the second half names the file; with spaces in the path, the halves are equal.
  const rest = line.slice("diff --git ".length);
  const half = (rest.length - 1) / 2;
  if (Number.isInteger(half) && rest.slice(0, half).replace(/^a\//, "") === rest.slice(half + 1).replace(/^b\//, "")) {
    return rest.slice(half + 1).replace(/^b\//, "");
  }
  return rest;
}

function stripSide(path: string, side: string): string {
  const clean = path.replace(/\t.*$/, "");
  return clean.startsWith(side) ? clean.slice(side.length) : clean;
}
