// The bar charts of report.html as data: every rectangle, whisker, tick and label already placed in SVG user
// units, so the template only copies numbers into attributes and text into elements. One horizontal bar per
// runtime (runtime names read better down the side than slanted under columns); the bar is the median over the
// repeats and, with more than one repeat, a whisker spans min to max, so a lucky run does not pass for a typical one.
import type { RuntimeSummary, Spread } from "./comparison.js";
import { formatDuration } from "../history/display-units.js";

export type ChartMetric = "time" | "cost" | "tokens";
/** Drives the fill colour: a runtime's own colour, or one of the token kinds. */
export type BarSeries = "runtime" | "input" | "cached" | "output";

export interface ChartBar {
  series: BarSeries;
  /** The runtime's position in the summary, so a runtime keeps its colour in every chart. */
  colorIndex: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** min to max over the repeats; null for a single run. */
  whisker: { x1: number; x2: number; y: number; capTop: number; capBottom: number } | null;
  /** The median as the label beside the bar. */
  valueLabel: string;
  labelX: number;
  labelY: number;
  /** Hover text: the series, the median and the spread. */
  tooltip: string;
}

export interface ChartRow {
  runtime: string;
  /** Where the runtime's name sits, right-aligned against the plot. */
  labelX: number;
  labelY: number;
  bars: ChartBar[];
  /** "n/a" in place of a bar, for a runtime with no value (no cost), so a missing cost never reads as $0. */
  missing: { text: string; x: number; y: number } | null;
}

export interface ChartTick {
  x: number;
  label: string;
}

export interface LegendEntry {
  series: BarSeries;
  label: string;
}

export interface BarChart {
  metric: ChartMetric;
  /** The figure's caption and the SVG's <title>. */
  title: string;
  /** Says what the chart shows in words, values included, for screen readers. */
  ariaLabel: string;
  width: number;
  height: number;
  plot: { left: number; right: number; top: number; bottom: number };
  /** Where the tick labels sit, under the plot. */
  tickLabelY: number;
  ticks: ChartTick[];
  rows: ChartRow[];
  legend: LegendEntry[];
}

const WIDTH = 520;
const LABEL_COLUMN = 100;
/** Room right of the longest bar for its value label. */
const VALUE_COLUMN = 70;
const TOP = 8;
const AXIS_ROOM = 24;
const BAR_HEIGHT = 16;
const ROW_GAP = 12;
const TOKEN_BAR_HEIGHT = 13;
const TOKEN_BAR_GAP = 3;
const TARGET_TICKS = 5;
/** How many runtime colours the report's stylesheet defines (rt-0 ... rt-7); more runtimes reuse them in turn. */
export const RUNTIME_COLORS = 8;

/** Coordinates to a tenth of a unit: finer adds bytes to the page and nothing to the picture. */
const at = (n: number) => Math.round(n * 10) / 10;

/** $1.23, $0.042, $0.0031; "n/a" for no cost. */
export function formatUsd(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  if (value === 0) return "$0";
  if (value >= 1) return `$${value.toFixed(2)}`;
  if (value >= 0.01) return `$${value.toFixed(3)}`;
  if (value >= 0.0001) return `$${value.toFixed(4)}`;
  return "<$0.0001";
}

/** 850, 12.3k, 123k, 1.23M: token counts at a glance (the table gives the exact figure). */
export function formatTokens(value: number): string {
  if (!Number.isFinite(value)) return "?";
  const abs = Math.abs(value);
  if (abs < 1000) return String(Math.round(value));
  if (abs < 100_000) return `${trimZeros((value / 1000).toFixed(1))}k`;
  if (abs < 1_000_000) return `${Math.round(value / 1000)}k`;
  return `${trimZeros((value / 1_000_000).toFixed(2))}M`;
}

function trimZeros(text: string): string {
  return text.includes(".") ? text.replace(/\.?0+$/, "") : text;
}

/** A step of 1, 2 or 5 times a power of ten that splits [0, max] into about `target` intervals. */
export function niceStep(max: number, target = TARGET_TICKS): number {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const rough = max / target;
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  const nice = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** The axis: from 0 to the first tick at or above the largest value (whiskers included). */
export function axisTicks(max: number): number[] {
  const step = niceStep(max);
  const last = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const ticks: number[] = [];
  // Counting steps rather than adding them keeps 0.1 + 0.2 rounding out of the labels.
  for (let i = 0; i * step <= last + step / 1e6; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

function formatTimeTick(ms: number): string {
  return ms === 0 ? "0" : formatDuration(ms);
}

interface SeriesSpec {
  series: BarSeries;
  label: string;
  pick: (summary: RuntimeSummary) => Spread | undefined;
}

interface ChartSpec {
  metric: ChartMetric;
  title: string;
  format: (value: number) => string;
  formatTick: (value: number) => string;
  series: SeriesSpec[];
  barHeight: number;
}

function buildChart(spec: ChartSpec, summaries: RuntimeSummary[]): BarChart {
  const plotLeft = LABEL_COLUMN;
  const plotRight = WIDTH - VALUE_COLUMN;
  const perRuntime = spec.series.length;
  const rowHeight = perRuntime * spec.barHeight + (perRuntime - 1) * TOKEN_BAR_GAP;
  const height = TOP + summaries.length * (rowHeight + ROW_GAP) + AXIS_ROOM;
  const plotBottom = height - AXIS_ROOM;

  const spreads = summaries.flatMap((s) => spec.series.map((series) => series.pick(s)));
  const max = Math.max(0, ...spreads.map((spread) => (spread ? Math.max(spread.max, spread.median) : 0)));
  const ticks = axisTicks(max);
  const domainMax = ticks[ticks.length - 1]!;
  const scale = (value: number) => plotLeft + (Math.max(0, value) / domainMax) * (plotRight - plotLeft);

  const rows = summaries.map((summary, index): ChartRow => {
    const rowTop = TOP + ROW_GAP / 2 + index * (rowHeight + ROW_GAP);
    const showSpread = summary.runs > 1;
    const bars: ChartBar[] = [];
    let missing: ChartRow["missing"] = null;
    spec.series.forEach((series, seriesIndex) => {
      const spread = series.pick(summary);
      const y = rowTop + seriesIndex * (spec.barHeight + TOKEN_BAR_GAP);
      if (!spread) {
        missing ??= { text: "n/a", x: plotLeft + 4, y: at(y + spec.barHeight / 2) };
        return;
      }
      const end = scale(spread.median);
      const whiskerEnd = showSpread ? scale(spread.max) : end;
      const middle = y + spec.barHeight / 2;
      const prefix = perRuntime > 1 ? `${series.label}: ` : "";
      const range = showSpread ? ` (min ${spec.format(spread.min)}, max ${spec.format(spread.max)}, ${summary.runs} runs)` : "";
      bars.push({
        series: series.series,
        colorIndex: index % RUNTIME_COLORS,
        x: plotLeft,
        y: at(y),
        width: at(end - plotLeft),
        height: spec.barHeight,
        whisker: showSpread
          ? { x1: at(scale(spread.min)), x2: at(whiskerEnd), y: at(middle), capTop: at(middle - spec.barHeight / 3), capBottom: at(middle + spec.barHeight / 3) }
          : null,
        valueLabel: spec.format(spread.median),
        labelX: at(Math.max(end, whiskerEnd) + 5),
        labelY: at(middle),
        tooltip: `${summary.runtime} ${prefix}median ${spec.format(spread.median)}${range}`,
      });
    });
    return {
      runtime: summary.runtime,
      labelX: plotLeft - 8,
      labelY: at(rowTop + rowHeight / 2),
      bars,
      missing,
    };
  });

  const repeats = Math.max(1, ...summaries.map((s) => s.runs));
  const described = rows.map((row) =>
    row.missing && row.bars.length === 0
      ? `${row.runtime} n/a`
      : `${row.runtime} ${row.bars.map((bar) => (perRuntime > 1 ? `${bar.series} ${bar.valueLabel}` : bar.valueLabel)).join(", ")}`,
  );
  return {
    metric: spec.metric,
    title: spec.title,
    ariaLabel: `${spec.title}, ${repeats > 1 ? `median of ${repeats} runs with min to max` : "one run"} per runtime: ${described.join("; ")}`,
    width: WIDTH,
    height,
    plot: { left: plotLeft, right: plotRight, top: TOP, bottom: plotBottom },
    tickLabelY: plotBottom + 16,
    ticks: ticks.map((value) => ({ x: at(scale(value)), label: spec.formatTick(value) })),
    rows,
    legend: perRuntime > 1 ? spec.series.map(({ series, label }) => ({ series, label })) : [],
  };
}

/** The three charts of the report, in the order it shows them: wall time, cost, tokens. */
export function buildCharts(summaries: RuntimeSummary[]): BarChart[] {
  return [
    buildChart(
      {
        metric: "time",
        title: "Wall time",
        format: formatDuration,
        formatTick: formatTimeTick,
        series: [{ series: "runtime", label: "wall time", pick: (s) => s.wallTimeMs }],
        barHeight: BAR_HEIGHT,
      },
      summaries,
    ),
    buildChart(
      {
        metric: "cost",
        title: "Cost (USD)",
        format: formatUsd,
        formatTick: (value) => (value === 0 ? "$0" : formatUsd(value)),
        series: [{ series: "runtime", label: "cost", pick: (s) => s.costUsd }],
        barHeight: BAR_HEIGHT,
      },
      summaries,
    ),
    buildChart(
      {
        metric: "tokens",
        title: "Tokens",
        format: formatTokens,
        formatTick: formatTokens,
        // Grouped, not stacked: cached input is part of input (the gateway's convention), and each kind keeps its
        // own whisker, which a stack of medians could not show honestly.
        series: [
          { series: "input", label: "input", pick: (s) => s.inputTokens },
          { series: "cached", label: "cached input (part of input)", pick: (s) => s.cachedInputTokens },
          { series: "output", label: "output", pick: (s) => s.outputTokens },
        ],
        barHeight: TOKEN_BAR_HEIGHT,
      },
      summaries,
    ),
  ];
}
