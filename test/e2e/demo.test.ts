// The README's main command, `npm run demo`, must work: a demo expert on the bundled fake model, no API key.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, readJobs } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();
const DEMO = fileURLToPath(new URL("../demo/run-demo.ts", import.meta.url));

describe.skipIf(!docker)("npm run demo", () => {
  const cwd = mkdtempSync(join(tmpdir(), "perstack-demo-test-"));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it("runs the demo expert to completion without any API key", async () => {
    const result = await execa(process.execPath, ["--disable-warning=ExperimentalWarning", DEMO], {
      cwd,
      env: cliEnv(),
      extendEnv: false,
      reject: false,
      all: true,
      timeout: 600_000,
    });
    expect(result.exitCode, result.all).toBe(0);
    const workspace = join(cwd, "perstack-demo");
    expect(readFileSync(join(workspace, "report.md"), "utf8")).toContain("# Sandbox report");
    const [job] = readJobs(workspace);
    expect(job!.job.status).toBe("completed");
    expect(result.all).toContain("Echo: hello from an MCP skill inside the sandbox");
  });
});
