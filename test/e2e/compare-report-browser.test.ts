// report.html in a real browser: Debian's Chromium (headless, through playwright-core) opens the fixture's report
// from a file:// URL. It must render without errors, fetch nothing but itself, and show what a reader looks for.
// A full-page screenshot goes to test-artifacts/ for CI to keep; with PERSTACK_UPDATE_SCREENSHOT=1 the README's
// picture, docs/compare-report.png (the top of the page at 1280 wide), is written again from the same render.
// In CI a missing Chromium fails this file (test/support/chromium.ts).
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type Browser, type ConsoleMessage } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderReportHtml } from "../../src/compare/report-html.js";
import { requireChromium } from "../support/chromium.js";
import { comparisonFixture } from "../unit/compare/comparison-fixture.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ARTIFACTS = join(ROOT, "test-artifacts");
const README_SCREENSHOT = join(ROOT, "docs", "compare-report.png");
/** The README's picture stays small enough for the repository: it is regenerated, and every version is kept. */
const README_SCREENSHOT_MAX_BYTES = 300 * 1024;

const executablePath = requireChromium("the report's browser test");
const comparison = comparisonFixture();

describe.skipIf(!executablePath)("report.html in headless Chromium", () => {
  const dir = mkdtempSync(join(tmpdir(), "perstack-report-"));
  const file = join(dir, "report.html");
  const url = pathToFileURL(file).href;
  let browser: Browser;

  beforeAll(async () => {
    writeFileSync(file, renderReportHtml(comparison));
    browser = await chromium.launch({ executablePath, headless: true });
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("renders without errors, fetches nothing but itself and shows the summary, charts, runs and diffs", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on("console", (message: ConsoleMessage) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("request", (request) => requests.push(request.url()));
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`));

    await page.goto(url, { waitUntil: "load" });

    expect(await page.title()).toContain("date-fixer");
    const rows = page.locator("table#summary tbody tr");
    expect(await rows.count()).toBe(comparison.summary.length);
    expect(await rows.locator("th").allInnerTexts()).toEqual(comparison.summary.map((s) => s.runtime));
    expect(await page.locator("table#summary tr[data-runtime=gemini] td.cost").innerText()).toBe("n/a");

    for (const metric of ["time", "cost", "tokens"]) {
      const figure = page.locator(`figure[data-metric="${metric}"]`);
      expect(await figure.count(), metric).toBe(1);
      const svg = figure.locator("svg[role=img]");
      expect(await svg.count(), metric).toBe(1);
      expect(await svg.getAttribute("aria-label"), metric).toBeTruthy();
      // Laid out, not collapsed: the SVG has a real size on the page.
      const box = await svg.boundingBox();
      expect(box!.width, metric).toBeGreaterThan(300);
      expect(box!.height, metric).toBeGreaterThan(60);
      expect(await figure.locator("rect").count(), metric).toBeGreaterThan(0);
    }
    expect(await page.locator("figure[data-metric]").count()).toBe(3);

    expect(await page.locator("section.run").count()).toBe(comparison.runs.length);
    const run = page.locator("section.run#run-claude-code-2");
    expect(await run.locator("table.diff tr.d-add").count()).toBeGreaterThan(0);
    expect(await run.locator("table.diff tr.d-del").count()).toBeGreaterThan(0);
    expect(await run.locator("table.diff tr.d-hunk").count()).toBeGreaterThan(0);
    expect(await run.locator("table.diff").first().isVisible()).toBe(true);
    // The hostile file from the sandbox shows as text: the browser made no element of it.
    expect(await page.locator("img, script, iframe").count()).toBe(0);
    await expect(run.locator("ul.files .path").nth(2).innerText()).resolves.toBe(`src/"><img src=x onerror=alert(1)>{{x}}.ts`);

    // Expanding needs no script: a closed <details> opens on a click.
    const timeline = run.locator("details.block").first();
    expect(await timeline.locator("ol.timeline").isVisible()).toBe(false);
    await timeline.locator(":scope > summary").click();
    expect(await timeline.locator("ol.timeline").isVisible()).toBe(true);

    expect(problems).toEqual([]);
    expect(requests).toEqual([url]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "compare-report.png"), fullPage: true });
    await context.close();
  });

  it("renders the README's picture: the top of the page, small enough to keep (docs/ with PERSTACK_UPDATE_SCREENSHOT=1)", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
    const page = await context.newPage();
    await page.goto(url, { waitUntil: "load" });
    // The top of the page down to the end of the charts: header, summary table, charts.
    const charts = await page.locator("section#charts").boundingBox();
    // Written to test-artifacts/ on every run, and over the README's copy only when asked.
    const target = process.env.PERSTACK_UPDATE_SCREENSHOT === "1" ? README_SCREENSHOT : join(ARTIFACTS, "compare-report-top.png");
    mkdirSync(join(target, ".."), { recursive: true });
    await page.screenshot({ path: target, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(charts!.y + charts!.height + 24) } });
    await context.close();
    expect(statSync(target).size).toBeLessThan(README_SCREENSHOT_MAX_BYTES);
  });

});
