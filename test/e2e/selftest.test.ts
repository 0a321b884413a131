// `perstack selftest` on this machine's engine: every isolation check passes, and breaking one property on purpose
// (a test-only plan override) makes exactly that check fail, by name, with a non-zero exit.
import { describe, expect, it } from "vitest";
import { makeWorkspace, runCli } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();

interface Report {
  ok: boolean;
  runtime: string;
  workspaceMode: string;
  checks: Array<{ name: string; ok: boolean; expected: string; seen: string }>;
}

async function selftest(args: string[]): Promise<{ exitCode: number; report: Report; stderr: string }> {
  const result = await runCli(["selftest", "--json", ...args], { cwd: makeWorkspace("", "perstack-selftest-cwd-"), timeoutMs: 600_000 });
  return { exitCode: result.exitCode ?? -1, report: JSON.parse(result.stdout) as Report, stderr: result.stderr };
}

describe.skipIf(!docker)("perstack selftest", () => {
  it("passes every check on this engine, and covers what the README promises", async () => {
    const { exitCode, report, stderr } = await selftest([]);
    expect(report.checks.filter((c) => !c.ok), stderr).toEqual([]);
    expect(exitCode).toBe(0);
    expect(report.ok).toBe(true);
    const names = report.checks.map((c) => c.name).join("\n");
    for (const topic of [
      /non-root user/, /no capabilities/, /read-only root filesystem/, /no Docker socket/,
      /DNS through resolv\.conf/, /DNS through Docker's resolver 127\.0\.0\.11/,
      /no route to the host through docker0/, /no route to the host through the internal network's gateway/, /no IPv6/,
      /proxy refuses a name not allowlisted/, /proxy refuses another port/, /proxy refuses an IP literal/, /proxy refuses plain HTTP/,
      /pid limit/, /memory limit/, /CPU limit/, /policy files and perstack\/ are read-only/, /unnamed host variables are absent/,
    ]) {
      expect(names).toMatch(topic);
    }
    for (const check of report.checks) {
      expect(check.expected.length, check.name).toBeGreaterThan(0);
      expect(check.seen.length, check.name).toBeGreaterThan(0);
    }
  });

  it("passes in the other workspace mode and for a vendor CLI's image", async () => {
    for (const args of [["--workspace-mode", process.getuid?.() === 0 ? "bind" : "copy"], ["--runtime", "claude-code"]]) {
      const { exitCode, report } = await selftest(args);
      expect(report.checks.filter((c) => !c.ok), args.join(" ")).toEqual([]);
      expect(exitCode).toBe(0);
    }
  });

  it("fails, naming the check, when the plan leaves a route to the host", async () => {
    const { exitCode, report } = await selftest(["--unsafe-break", "internal-gateway"]);
    expect(exitCode).toBe(1);
    expect(report.ok).toBe(false);
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toContainEqual(expect.stringMatching(/^no route to the host through the internal network's gateway/));
    expect(failed.find((c) => c.name.includes("internal network"))!.seen).toMatch(/succeeded/);
    expect(failed.every((c) => c.name.startsWith("no route to the host"))).toBe(true);
  });

  it("fails, naming the check, when a host variable nobody named reaches the agent", async () => {
    const { exitCode, report } = await selftest(["--unsafe-break", "env"]);
    expect(exitCode).toBe(1);
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["unnamed host variables are absent"]);
  });

  it("prints one row per check for people, and a last line with the verdict", async () => {
    const result = await runCli(["selftest"], { cwd: makeWorkspace("", "perstack-selftest-cwd-"), timeoutMs: 600_000 });
    expect(result.exitCode, result.all).toBe(0);
    const rows = result.stdout.split("\n").filter((l) => /^(pass|FAIL) {2}/.test(l));
    expect(rows.length).toBeGreaterThanOrEqual(18);
    expect(result.stdout).toMatch(/expected: .+\n\s+seen: /);
    expect(result.stdout.trim().split("\n").at(-1)).toMatch(/^selftest: all \d+ checks passed \(runtime perstack, workspace mode (bind|copy)\)$/);
  });
});
