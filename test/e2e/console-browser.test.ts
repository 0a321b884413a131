// Issue 15: the web console of `perstack serve`, in Debian's Chromium (headless, through playwright-core), against a
// real server, the real engine and the fake model. A tenant signs in; starts a run from the form with a workspace
// upload; watches its tool call appear while the run is still going; answers the run's interactive question; reads
// the final answer, the workspace diff and the checkpoints; starts a comparison and reads its report. Throughout, the
// page logs no error and makes no request that leaves the server's origin. Screenshots go to test-artifacts/ for CI
// to keep; with PERSTACK_UPDATE_SCREENSHOT=1 the README's picture, docs/console.png, is written again.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { execa } from "execa";
import { chromium, type Browser, type Page } from "playwright-core";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { isHostNetworkChange, requireChromium } from "../support/chromium.js";
import { leftAfterTeardown, requireDocker } from "../support/docker.js";
import { baseAndAskSkills, fakeModelSuite, keyEnv, perstackToml } from "../support/perstack-e2e.js";
import { CLI, cliEnv, readJobs, runCli } from "../support/cli.js";
import { addTenant, startServer, type TestServer } from "../support/perstack-server.js";

const docker = await requireDocker();
const executablePath = requireChromium("the console's browser test");

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ARTIFACTS = join(ROOT, "test-artifacts");
const README_SCREENSHOT = join(ROOT, "docs", "console.png");
const README_SCREENSHOT_MAX_BYTES = 300 * 1024;
const STEP_MS = 90_000;
/** The first run may build the agent, proxy and gateway images (minutes on a cold engine, or behind another test's build). */
const FIRST_RUN_MS = 15 * 60_000;

const EXPERTS = `[experts."worker"]
description = "Works in the workspace and asks when unsure"
instruction = "Do as asked; ask the user what you cannot decide."
${baseAndAskSkills("worker")}
[experts."plain"]
description = "Answers"
instruction = "Answer briefly."
`;

async function tarGz(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack as AsyncIterable<Buffer>) chunks.push(chunk);
  return gzipSync(Buffer.concat(chunks));
}

const byTestId = (page: Page, id: string) => page.locator(`[data-testid="${id}"]`);

describe.skipIf(!docker || !executablePath)("the web console in headless Chromium", () => {
  const suite = fakeModelSuite(docker!, "perstack-console-");
  const dirs = { data: mkdtempSync(join(tmpdir(), "perstack-console-data-")), cwd: mkdtempSync(join(tmpdir(), "perstack-console-cwd-")) };
  let server: TestServer;
  let token: string;
  let browser: Browser;

  beforeAll(async () => {
    token = await addTenant(dirs, "acme");
    server = await startServer(dirs, { allowUpstream: new URL(suite.fake.sandboxUrl).host });
    browser = await chromium.launch({ executablePath: executablePath!, headless: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    if (server?.log()) console.log(`perstack serve said:\n${server.log()}`);
    await server?.stop();
    rmSync(dirs.data, { recursive: true, force: true });
    rmSync(dirs.cwd, { recursive: true, force: true });
  });

  it("signs in, runs, watches tool calls live, answers the question, reads the diff, checkpoints and a comparison report", async () => {
    await suite.fake.script([
      // The tool call takes a few seconds in the sandbox: the page must show it while the run is still going.
      { forQuery: "console work", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "sleep 4; echo made in the console > made.txt; echo changed > readme.txt; echo '<img src=x onerror=alert(1)><script>alert(2)</script>'"], timeout: 60000 } }] },
      { forQuery: "console work", toolUse: [{ name: "askColor", input: { question: "Which color do you want?" } }] },
      { forQuery: "console work", text: "You chose blue." },
      { forQuery: "console work", text: "Continued from a checkpoint." },
      // A run that tries a host nobody allowed, then would go on for a minute: it is cancelled from the page.
      { forQuery: "console slow", toolUse: [{ name: "exec", input: { command: "sh", args: ["-c", "node -e \"fetch('https://not-allowed.example/').catch(() => {})\"; sleep 60"], timeout: 120000 } }] },
      { forQuery: "compare me", text: "compared answer" },
    ]);
    const config = perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS });
    const workspaceFile = join(dirs.cwd, "workspace.tar.gz");
    writeFileSync(workspaceFile, await tarGz({ "readme.txt": "as uploaded\n" }));

    const origin = new URL(server.url).origin;
    const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: "light" });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    const problems: string[] = [];
    const elsewhere: string[] = [];
    page.on("console", (message) => {
      if ((message.type() === "error" || message.type() === "warning") && !isHostNetworkChange(message.text())) problems.push(`console ${message.type()}: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("dialog", (dialog) => {
      problems.push(`dialog: ${dialog.message()}`);
      void dialog.dismiss();
    });
    page.on("requestfailed", (request) => {
      // The live event stream is cut when the page moves on: that is the page's doing, not a failure.
      const why = request.failure()?.errorText ?? "";
      if (!request.url().includes("/events") && !isHostNetworkChange(why)) problems.push(`request failed: ${request.url()} ${why}`);
    });
    page.on("request", (request) => {
      const url = request.url();
      if (!url.startsWith("blob:") && !url.startsWith("data:") && new URL(url).origin !== origin) elsewhere.push(url);
    });
    const shot = async (name: string) => {
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
    };
    // What the page showed when a step failed, for the CI artefacts.
    onTestFailed(async () => {
      await shot("failure");
      const shown = /#\/runs\/([^/?]+)/.exec(page.url())?.[1];
      const record = shown ? await (await fetch(`${server.url}/v1/runs/${shown}`, { headers: { authorization: `Bearer ${token}` } })).text() : "";
      console.log(`console page at failure (${page.url()}):\n${(await page.locator("body").innerText()).slice(0, 1500)}\nthe API's record: ${record}\nproblems: ${problems.join("\n")}`);
    });

    // Sign in: a wrong token is refused with the API's message, the right one opens the jobs list.
    await page.goto(`${server.url}/`);
    await byTestId(page, "signin-token").fill("pst_acme_wrong");
    await byTestId(page, "signin-submit").click();
    await expect(byTestId(page, "error").innerText()).resolves.toMatch(/token/i);
    // Chromium logs every 4xx answer as a console error, this deliberate 401 too: only what follows must be clean.
    expect(problems.every((p) => p.includes("401"))).toBe(true);
    problems.length = 0;
    await byTestId(page, "signin-token").fill(token);
    await byTestId(page, "signin-submit").click();
    await byTestId(page, "jobs-table").waitFor();
    // The token stays in this tab's session only.
    expect(await page.evaluate("({ local: window.localStorage.length, cookies: document.cookie })")).toEqual({ local: 0, cookies: "" });

    // A new run from the form, with a workspace.
    await byTestId(page, "nav-new-run").click();
    await byTestId(page, "new-run-config").fill(config);
    await byTestId(page, "new-run-expert").fill("worker");
    await byTestId(page, "new-run-query").fill("console work");
    await byTestId(page, "new-run-runtime").selectOption("perstack");
    await byTestId(page, "new-run-workspace").setInputFiles(workspaceFile);
    await byTestId(page, "new-run-submit").click();

    // Its tool call appears while the run is still going (the command sleeps in the sandbox).
    const toolCall = page.locator('[data-testid="tool-call"][data-tool-name="exec"]');
    await toolCall.first().waitFor({ timeout: FIRST_RUN_MS });
    expect(await byTestId(page, "run-status").innerText()).toMatch(/running/i);
    await shot("run-live");
    await toolCall.first().locator("summary").first().click();
    await expect(toolCall.first().innerText()).resolves.toContain("made in the console");

    // The run stops on its question; the answer continues the same job to its end.
    const question = byTestId(page, "interactive-question");
    await question.waitFor();
    await expect(question.innerText()).resolves.toContain("Which color do you want?");
    await byTestId(page, "interactive-answer").fill("blue");
    await byTestId(page, "interactive-submit").click();
    await expect(byTestId(page, "final-answer").innerText()).resolves.toContain("You chose blue.");
    await expect.poll(() => byTestId(page, "run-status").getAttribute("data-status"), { timeout: STEP_MS, interval: 250 }).toBe("completed");
    expect(await byTestId(page, "usage").innerText()).toMatch(/[1-9]/);
    await shot("run-done");
    // What the agent printed is text, never markup: its tags show as written and the page made no element of them.
    await expect(byTestId(page, "timeline").textContent()).resolves.toContain("<img src=x onerror=alert(1)><script>alert(2)</script>");
    expect(await byTestId(page, "timeline").locator("img, script").count()).toBe(0);
    const jobId = decodeURIComponent(/#\/runs\/([^/?]+)/.exec(page.url())![1]!);
    expect(await leftAfterTeardown(docker!, jobId)).toEqual([]);

    // The workspace diff against the upload.
    await byTestId(page, "tab-diff").click();
    const diff = byTestId(page, "diff-view");
    await diff.waitFor();
    await expect(diff.innerText()).resolves.toContain("+made in the console");
    await expect(diff.innerText()).resolves.toContain("-as uploaded");
    await shot("diff");

    // Checkpoints: one opens with its messages.
    await byTestId(page, "tab-checkpoints").click();
    await byTestId(page, "checkpoint-row").first().waitFor();
    await byTestId(page, "checkpoint-row").first().click();
    await expect(byTestId(page, "checkpoint-messages").innerText()).resolves.toContain("console work");
    // ...and the job continues from its last checkpoint (the fake answers by the conversation's turn) with a new query.
    await byTestId(page, "checkpoint-row").filter({ hasText: "completed" }).last().click();
    await byTestId(page, "continue-query").fill("one more thing");
    await byTestId(page, "continue-submit").click();
    await expect.poll(async () => (await byTestId(page, "final-answer").count()) > 0 && (await byTestId(page, "final-answer").innerText()), { timeout: STEP_MS, interval: 250 }).toContain("Continued from a checkpoint.");
    await expect.poll(() => byTestId(page, "run-status").getAttribute("data-status"), { timeout: STEP_MS, interval: 250 }).toBe("completed");

    // The jobs list shows the run with its figures.
    await byTestId(page, "nav-runs").click();
    const row = page.locator(`[data-testid="job-row"][data-job-id="${jobId}"]`);
    await row.waitFor();
    expect(await row.getAttribute("data-status")).toBe("completed");
    await shot("jobs");

    // A comparison started from the console, watched to its end, and its report read in the page.
    await byTestId(page, "nav-comparisons").click();
    await byTestId(page, "new-comparison-config").fill(config);
    await byTestId(page, "new-comparison-expert").fill("plain");
    await byTestId(page, "new-comparison-query").fill("compare me");
    await byTestId(page, "new-comparison-runtimes").selectOption(["perstack"]);
    await byTestId(page, "new-comparison-submit").click();
    const report = page.frameLocator('[data-testid="comparison-report"]');
    await report.locator("table#summary").waitFor({ timeout: 180_000 });
    expect(await report.locator("table#summary tbody tr").count()).toBe(1);
    await shot("comparison");

    // A run cancelled from the page, after its blocked request shows highlighted.
    await byTestId(page, "nav-new-run").click();
    await byTestId(page, "new-run-config").fill(config);
    await byTestId(page, "new-run-expert").fill("worker");
    await byTestId(page, "new-run-query").fill("console slow");
    await byTestId(page, "new-run-submit").click();
    await page.locator('[data-testid="proxy-decision"][data-action="blocked"]').first().waitFor();
    await expect(page.locator('[data-testid="proxy-decision"][data-action="blocked"]').first().innerText()).resolves.toContain("not-allowed.example");
    await byTestId(page, "cancel-run").click();
    await expect.poll(() => byTestId(page, "run-status").getAttribute("data-status"), { timeout: STEP_MS, interval: 250 }).not.toMatch(/^(queued|running)$/);
    await shot("cancelled");
    const cancelled = decodeURIComponent(/#\/runs\/([^/?]+)/.exec(page.url())![1]!);
    expect(await leftAfterTeardown(docker!, cancelled)).toEqual([]);

    expect(problems).toEqual([]);
    expect(elsewhere).toEqual([]);

    // The README's picture: the run view, at its end.
    await page.goto(`${server.url}/#/runs/${jobId}`);
    await byTestId(page, "final-answer").waitFor();
    const target = process.env.PERSTACK_UPDATE_SCREENSHOT === "1" ? README_SCREENSHOT : join(ARTIFACTS, "console-readme.png");
    mkdirSync(join(target, ".."), { recursive: true });
    await page.screenshot({ path: target });
    expect(statSync(target).size).toBeLessThan(README_SCREENSHOT_MAX_BYTES);
    await context.close();
  }, 1_200_000);

  it("perstack ui shows the jobs a CLI run left here, read-only, opened from the URL it prints", async () => {
    await suite.fake.script([{ forQuery: "local work", text: "local answer" }]);
    const ws = suite.workspace(perstackToml({ baseUrl: suite.fake.sandboxUrl, top: "maxRetries = 0", experts: EXPERTS }));
    const run = await runCli(["run", "plain", "local work"], { cwd: ws, env: keyEnv(), timeoutMs: FIRST_RUN_MS });
    expect(run.exitCode, run.all).toBe(0);
    const [job] = readJobs(ws);
    const ui = execa(process.execPath, [CLI, "ui", "--port", "0"], { cwd: ws, env: cliEnv(), extendEnv: false, reject: false, all: true });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let seen = "";
        ui.stdout!.on("data", (chunk: Buffer) => {
          seen += chunk.toString();
          const match = /open (http:\/\/127\.0\.0\.1:[0-9]+\/#token=[A-Za-z0-9_-]+)/.exec(seen);
          if (match) resolve(match[1]!);
        });
        void ui.then((result) => reject(new Error(`perstack ui ended: ${result.all}`)));
      });
      const origin = new URL(url).origin;
      const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
      const page = await context.newPage();
      page.setDefaultTimeout(30_000);
      const problems: string[] = [];
      page.on("console", (message) => {
        if ((message.type() === "error" || message.type() === "warning") && !isHostNetworkChange(message.text())) problems.push(`console ${message.type()}: ${message.text()}`);
      });
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("request", (request) => {
        const target = request.url();
        if (!target.startsWith("blob:") && !target.startsWith("data:") && new URL(target).origin !== origin) problems.push(`request elsewhere: ${target}`);
      });

      await page.goto(url);
      const row = page.locator(`[data-testid="job-row"][data-job-id="${job!.job.id}"]`);
      await row.waitFor();
      expect(await row.getAttribute("data-status")).toBe("completed");
      // The token left the address bar once read; nothing here can start, stop or continue a run.
      expect(page.url()).not.toContain("token=");
      expect(await byTestId(page, "nav-new-run").count()).toBe(0);
      await row.click();
      await expect(byTestId(page, "final-answer").innerText()).resolves.toContain("local answer");
      expect(await byTestId(page, "cancel-run").count()).toBe(0);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "console-ui-local.png"), fullPage: true });
      expect(problems).toEqual([]);
      await context.close();
    } finally {
      ui.kill("SIGTERM");
      await ui;
    }
  }, 1_200_000);
});
