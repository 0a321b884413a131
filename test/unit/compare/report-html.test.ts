// report.html from a realistic comparison: hostile sandbox text stays text, the page reaches for nothing off itself,
// and the parts a reader (and the browser test) looks for are there: the summary rows, one chart per metric, a
// section per run with its diff.
import { describe, expect, it } from "vitest";
import type { Comparison, RuntimeSummary } from "../../../src/compare/comparison.js";
import { axisTicks, buildCharts, formatTokens, formatUsd, niceStep } from "../../../src/compare/report-charts.js";
import { parseUnifiedDiff, renderReportHtml } from "../../../src/compare/report-html.js";
import { comparisonFixture, HANDLEBARS, HOSTILE, summarize } from "./comparison-fixture.js";

const html = renderReportHtml(comparisonFixture());

/** The markup between an element's opening tag (found by `open`) and its matching close, assuming no nesting of the same tag. */
function element(source: string, open: RegExp, tag: string): string {
  const start = source.search(open);
  expect(start, `no match for ${open}`).toBeGreaterThanOrEqual(0);
  const end = source.indexOf(`</${tag}>`, start);
  return source.slice(start, end + tag.length + 3);
}

function count(source: string, pattern: RegExp): number {
  return [...source.matchAll(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`))].length;
}

describe("renderReportHtml: hostile text", () => {
  it("escapes markup from answers, arguments, paths, domains, diffs, errors and check output", () => {
    expect(html).not.toMatch(/<img/i);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/onerror=/i);
    expect(html).not.toContain(HOSTILE);
    // The same text, escaped, shows up wherever the fixture put it.
    const escaped = "&lt;/script&gt;&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;";
    expect(count(html, new RegExp(escaped.replace(/[()]/g, "\\$&")))).toBeGreaterThanOrEqual(10);
    // A hostile domain and file path are escaped inside attributes' neighbours too: no attribute is broken out of.
    expect(html).toContain("evil.example&quot;&gt;&lt;img");
    expect(html).toContain("src/&quot;&gt;&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;{{x}}.ts");
  });

  it("shows Handlebars syntax from the sandbox literally instead of evaluating it", () => {
    expect(count(html, /\{\{x\}\}/)).toBeGreaterThanOrEqual(6);
    expect(html).toContain("{{{raw}}} {{&gt; partial}}");
    expect(html).toContain(`${HANDLEBARS} &amp; &quot;quotes&quot; &#x27;too&#x27;`);
  });

  it("keeps a diff line that closes the viewer's own elements as text", () => {
    expect(html).toContain("&lt;/pre&gt;&lt;/details&gt;&lt;/section&gt;");
  });
});

describe("renderReportHtml: self-contained", () => {
  it("names no URL and loads nothing: no scripts, stylesheets, images or fonts", () => {
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/<(script|link|img|iframe|object|embed|base)\b/i);
    expect(html).not.toMatch(/\s(src|srcset|xlink:href)=/i);
    expect(html).not.toMatch(/@import|url\(/i);
    // Links only jump within the page.
    for (const [, href] of html.matchAll(/href="([^"]*)"/g)) expect(href).toMatch(/^#[A-Za-z0-9_-]+$/);
  });

  it("carries a CSP that forbids scripts and fetching anything", () => {
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`);
  });

  it("stays free of URLs the template would add even when the data holds one, and shows the data's URL as text", () => {
    const comparison = comparisonFixture();
    comparison.runs[0]!.finalAnswer = "See https://example.com/<b>x</b>";
    const page = renderReportHtml(comparison);
    expect(page.match(/https?:\/\/[^\s<]*/g)).toEqual(["https://example.com/&lt;b&gt;x&lt;/b&gt;"]);
    expect(page).not.toMatch(/href="https?:/);
  });
});

describe("renderReportHtml: content", () => {
  const comparison = comparisonFixture();

  it("has a header with the expert, query, id, date, runtimes, repeat and check", () => {
    const header = element(html, /<header class="report"/, "header");
    expect(header).toContain("date-fixer");
    expect(header).toContain("Fix the failing date test in src/date.ts");
    expect(header).toContain("cmp-20260312-091500-4f2a");
    expect(header).toContain("2026-03-12 09:15 UTC");
    for (const runtime of comparison.runtimes) expect(header).toContain(`>${runtime}</span>`);
    expect(header).toMatch(/class="rt skipped">cursor</);
    expect(header).toContain("<dd>2 <span");
    expect(header).toContain("npm test -- --run test/date.test.ts");
  });

  it("has one summary row per runtime that ran, with pass rate, medians and min–max", () => {
    const table = element(html, /<table id="summary">/, "table");
    const rows = [...table.matchAll(/<tr data-runtime="([^"]+)">([\s\S]*?)<\/tr>/g)];
    expect(rows.map((r) => r[1])).toEqual(["perstack", "claude-code", "gemini", "codex"]);
    const row = (runtime: string) => rows.find((r) => r[1] === runtime)![2]!;
    expect(row("perstack")).toContain("2/2 passed");
    expect(row("perstack")).toContain("tone-ok");
    expect(row("gemini")).toContain("1/2 passed");
    expect(row("gemini")).toContain("tone-warn");
    expect(row("codex")).toContain("1/2 completed");
    // Wall time: median of 48.2 s and 55.9 s, with the spread under it.
    expect(row("perstack")).toContain("52.0s<span class=\"range\">48.2s–55.9s</span>");
    expect(row("perstack")).toMatch(/\$0\.088<span class="range">\$0\.082–\$0\.094<\/span><span class="source">metered<\/span>/);
    expect(row("claude-code")).toContain("137,150");
  });

  it("shows n/a, not $0, for a runtime with no cost, in the table and the cost chart", () => {
    const table = element(html, /<table id="summary">/, "table");
    const gemini = /<tr data-runtime="gemini">([\s\S]*?)<\/tr>/.exec(table)![1]!;
    expect(gemini).toMatch(/<td class="num cost">n\/a<\/td>/);
    const cost = element(html, /<figure class="chart card" data-metric="cost"/, "figure");
    expect(cost).toContain(`<text class="na"`);
    expect(cost).toMatch(/>n\/a<\/text>/);
    expect(cost).toContain("gemini n/a");
  });

  it("lists skipped runtimes with their reason", () => {
    const skipped = element(html, /<table class="plain" id="skipped">/, "table");
    expect(skipped).toContain("cursor");
    expect(skipped).toContain("CURSOR_API_KEY is not set");
  });

  it("draws one chart per metric, each an accessible SVG with a title and whiskers for the repeats", () => {
    for (const metric of ["time", "cost", "tokens"]) {
      expect(count(html, new RegExp(`<figure [^>]*data-metric="${metric}"`))).toBe(1);
      const figure = element(html, new RegExp(`<figure class="chart card" data-metric="${metric}"`), "figure");
      expect(figure).toMatch(/<svg role="img" aria-label="[^"]+"/);
      expect(figure).toContain("<title>");
      expect(figure).toContain(`class="whisker"`);
    }
    const tokens = element(html, /<figure class="chart card" data-metric="tokens"/, "figure");
    expect(count(tokens, /<rect class="s-(input|cached|output)"/)).toBe(12);
  });

  it("has a section per run with its status, timeline, answer, egress, check and diff", () => {
    expect(count(html, /<section class="run /)).toBe(8);
    for (const run of comparison.runs) expect(html).toContain(`id="run-${run.runtime}-${run.repeat + 1}"`);
    const codex = element(html, /<section class="run [^"]*" id="run-codex-2"/, "section");
    expect(codex).toContain("stoppedByError");
    expect(codex).toContain(`<div class="error"`);
    expect(codex).toContain("No final answer was recorded.");
    expect(codex).toContain("check failed");
    expect(codex).toContain("exit code 1");
    expect(codex).toMatch(/<tr class="blocked">/);
    const claude = element(html, /<section class="run [^"]*" id="run-claude-code-2"/, "section");
    expect(claude).toContain(`<span class="native">Bash</span>`);
    expect(claude).toContain("37 more call(s)");
    expect(claude).toContain("binary (48,213 bytes)");
    expect(claude).toMatch(/class="badge st-deleted">deleted</);
  });

  it("renders the diff line by line with classes and line numbers", () => {
    const run = element(html, /<section class="run [^"]*" id="run-perstack-1"/, "section");
    expect(run).toContain(`<tr class="d-header"><td class="ln"></td><td class="ln"></td><td class="code">diff --git a/src/date.ts b/src/date.ts</td></tr>`);
    expect(run).toMatch(/<tr class="d-hunk">[^\n]*@@ -12,9 \+12,12 @@/);
    expect(run).toContain(`<tr class="d-del"><td class="ln">15</td><td class="ln"></td><td class="code">-  // Months are 1-based in the text and in Date.UTC.</td></tr>`);
    expect(run).toContain(`<tr class="d-add"><td class="ln"></td><td class="ln">15</td><td class="code">+  // Date.UTC counts months from 0; the text counts them from 1.</td></tr>`);
    expect(run).toContain(`<tr class="d-context"><td class="ln">17</td><td class="ln">17</td><td class="code"> }</td></tr>`);
  });

  it("shows the provenance and the warnings", () => {
    const provenance = element(html, /<section id="provenance"/, "section");
    expect(provenance).toContain("@anthropic-ai/claude-code@2.1.4");
    expect(provenance).toContain("perstack/agent-codex:5a2be913");
    expect(provenance).toContain("built in");
    expect(provenance).toContain(comparison.provenance.pricing!.sha256);
    expect(provenance).toContain("2026-11-29");
    expect(provenance).toContain("gpt-5-codex");
    const warnings = element(html, /<section id="warnings"/, "section");
    expect(count(warnings, /<li>/)).toBe(2);
  });

  it("renders a single-run comparison without spreads, and one without a check, warnings or pricing", () => {
    const single: Comparison = { ...comparisonFixture(), repeat: 1, check: undefined, warnings: [], skipped: [] };
    single.runs = single.runs.filter((r) => r.repeat === 0).map((r) => ({ ...r, check: undefined, changes: undefined }));
    single.summary = summarize(single.runs);
    single.provenance = { ...single.provenance, pricing: undefined };
    const page = renderReportHtml(single);
    const table = element(page, /<table id="summary">/, "table");
    expect(table).not.toContain(`class="range"`);
    expect(table).toContain("1/1 completed");
    expect(page).not.toContain(`class="whisker"`);
    expect(page).not.toContain(`id="warnings"`);
    expect(page).not.toContain(`id="skipped"`);
    expect(page).toContain("Not recorded: this job was not run by compare.");
    expect(page).toContain("none: no run was metered");
    expect(count(page, /<section class="run /)).toBe(4);
  });
});

describe("report charts", () => {
  const summary = summarize(comparisonFixture().runs);

  it("picks 1-2-5 steps and an axis that covers the largest value", () => {
    expect(niceStep(121_000)).toBe(50_000);
    expect(axisTicks(121_000)).toEqual([0, 50_000, 100_000, 150_000]);
    expect(axisTicks(0.1264)).toEqual([0, 0.05, 0.1, 0.15]);
    expect(axisTicks(0)).toEqual([0, 1]);
  });

  it("draws the median as the bar and min–max as the whisker, on one scale", () => {
    const [time] = buildCharts(summary);
    const codex = time!.rows.find((r) => r.runtime === "codex")!.bars[0]!;
    const { left, right } = time!.plot;
    const x = (ms: number) => Math.round((left + (ms / 150_000) * (right - left)) * 10) / 10;
    expect(codex.x).toBe(left);
    expect(codex.x + codex.width).toBeCloseTo(x((82_300 + 121_000) / 2), 0);
    expect(codex.whisker).toMatchObject({ x1: x(82_300), x2: x(121_000) });
    expect(codex.valueLabel).toBe("1m 42s");
    expect(codex.labelX).toBeGreaterThan(codex.whisker!.x2);
    expect(time!.ticks.map((t) => t.label)).toEqual(["0", "50.0s", "1m 40s", "2m 30s"]);
  });

  it("leaves a runtime without a cost barless, marked n/a", () => {
    const [, cost] = buildCharts(summary);
    const gemini = cost!.rows.find((r) => r.runtime === "gemini")!;
    expect(gemini.bars).toEqual([]);
    expect(gemini.missing?.text).toBe("n/a");
    expect(cost!.ariaLabel).toContain("gemini n/a");
  });

  it("groups input, cached and output tokens per runtime, with a legend", () => {
    const [, , tokens] = buildCharts(summary);
    expect(tokens!.legend.map((l) => l.series)).toEqual(["input", "cached", "output"]);
    for (const row of tokens!.rows) expect(row.bars.map((b) => b.series)).toEqual(["input", "cached", "output"]);
  });

  it("draws no whisker for a single run", () => {
    const one: RuntimeSummary[] = summarize(comparisonFixture().runs.filter((r) => r.repeat === 0));
    for (const chart of buildCharts(one)) for (const row of chart.rows) for (const bar of row.bars) expect(bar.whisker).toBeNull();
  });

  it("formats money and token counts for reading at a glance", () => {
    expect(formatUsd(null)).toBe("n/a");
    expect(formatUsd(0)).toBe("$0");
    expect(formatUsd(1.234)).toBe("$1.23");
    expect(formatUsd(0.0821)).toBe("$0.082");
    expect(formatUsd(0.0042)).toBe("$0.0042");
    expect(formatUsd(0.00001)).toBe("<$0.0001");
    expect(formatTokens(850)).toBe("850");
    expect(formatTokens(58_400)).toBe("58.4k");
    expect(formatTokens(40_000)).toBe("40k");
    expect(formatTokens(142_800)).toBe("143k");
    expect(formatTokens(1_250_000)).toBe("1.25M");
  });
});

describe("parseUnifiedDiff", () => {
  it("splits files, numbers lines from the hunk headers and marks the no-newline note", () => {
    const files = parseUnifiedDiff(
      [
        "diff --git a/a.txt b/a.txt",
        "--- a/a.txt",
        "+++ b/a.txt",
        "@@ -3,3 +3,3 @@ heading",
        " keep",
        "--- a removed line that looks like a header",
        "+++ an added line that looks like a header",
        "",
        "diff --git a/gone.txt b/gone.txt",
        "deleted file mode 100644",
        "--- a/gone.txt",
        "+++ /dev/null",
        "@@ -1 +0,0 @@",
        "-bye",
        "\\ No newline at end of file",
        "",
      ].join("\n"),
    );
    expect(files.map((f) => [f.title, f.added, f.removed])).toEqual([
      ["a.txt", 1, 1],
      ["gone.txt", 0, 1],
    ]);
    expect(files[0]!.lines.map((l) => [l.kind, l.oldNo, l.newNo])).toEqual([
      ["header", null, null],
      ["header", null, null],
      ["header", null, null],
      ["hunk", null, null],
      ["context", 3, 3],
      ["del", 4, null],
      ["add", null, 4],
      ["context", 5, 5],
    ]);
    expect(files[1]!.lines.map((l) => l.kind)).toEqual(["header", "header", "header", "header", "hunk", "del", "meta"]);
  });

  it("reads a plain diff without git headers, one file per ---/+++ pair", () => {
    const files = parseUnifiedDiff("--- x\n+++ x\n@@ -1 +1 @@\n-a\n+b\n--- y\n+++ y\n@@ -1 +1 @@\n-c\n+d\n");
    expect(files.map((f) => f.title)).toEqual(["x", "y"]);
    expect(files.every((f) => f.added === 1 && f.removed === 1)).toBe(true);
  });

  it("names a file whose path has spaces from its git header", () => {
    const [file] = parseUnifiedDiff("diff --git a/my file.txt b/my file.txt\nBinary files differ\n");
    expect(file!.title).toBe("my file.txt");
    expect(parseUnifiedDiff("")).toEqual([]);
  });
});
