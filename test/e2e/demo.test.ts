// The README's main command, `npm run demo`, must work and tell the truth: a demo expert on the bundled fake model,
// no API key, then `npm run demo -- claude-code` in the same directory, as the README suggests.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, readJobs } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();
/** What `npm run demo` runs (package.json). */
const DEMO = fileURLToPath(new URL("../demo/demo.mjs", import.meta.url));

function demo(cwd: string, args: string[] = []) {
  return execa(process.execPath, [DEMO, ...args], { cwd, env: cliEnv(), extendEnv: false, reject: false, all: true, timeout: 600_000 });
}

describe.skipIf(!docker)("npm run demo", () => {
  const cwd = mkdtempSync(join(tmpdir(), "perstack-demo-test-"));
  const workspace = join(cwd, "perstack-demo");
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it("runs the demo expert to completion without any API key, then again on Claude Code in the same workspace", async () => {
    const first = await demo(cwd);
    expect(first.exitCode, first.all).toBe(0);
    expect(first.all).toContain("Echo: hello from an MCP skill inside the sandbox");
    expect(first.all).toMatch(/\[demo\] report written to .*report\.md by job \S+ \(completed\)/);
    const firstReport = readFileSync(join(workspace, "report.md"), "utf8");
    expect(firstReport).toMatch(/^# Sandbox report\n[\s\S]*on the perstack runtime\.\n$/);
    const [firstJob] = readJobs(workspace);
    expect(firstJob!.job.status).toBe("completed");

    // The first run's report.md is still there: Claude Code's Write refuses to replace a file it has not read, so
    // without a clean workspace this run's write would fail while the job still completes.
    const second = await demo(cwd, ["claude-code"]);
    expect(second.exitCode, second.all).toBe(0);
    expect(second.all).not.toContain("has not been read yet");
    expect(second.all).toMatch(/\[demo\] report written to .*report\.md by job \S+ \(completed\)/);
    const secondReport = readFileSync(join(workspace, "report.md"), "utf8");
    expect(secondReport).toMatch(/^# Sandbox report\n[\s\S]*on the claude-code runtime\.\n$/);
    const jobs = readJobs(workspace);
    expect(jobs).toHaveLength(2);
    const secondJob = jobs.find((job) => job.jobId !== firstJob!.jobId)!;
    expect(secondJob.job.status).toBe("completed");
    expect(secondJob.runs[0]!.setting).toMatchObject({ runtime: { name: "claude-code" } });
    expect(second.all).toContain(secondJob.jobId);
  });

  it("leaves a report.md it did not write alone, and stops saying so", async () => {
    const dir = mkdtempSync(join(cwd, "user-"));
    mkdirSync(join(dir, "perstack-demo"));
    writeFileSync(join(dir, "perstack-demo", "report.md"), "my own notes\n");
    const result = await demo(dir);
    expect(result.exitCode, result.all).toBe(1);
    expect(result.all).toMatch(/\[demo\] .*report\.md was not written by the demo: move it out of/);
    expect(readFileSync(join(dir, "perstack-demo", "report.md"), "utf8")).toBe("my own notes\n");
  });
});
