// `perstack selftest`: loaded only when it runs.
import { runSelftest, type Breakable } from "../job/selftest.js";
import { baseImagesFor } from "./base-image-choice.js";
import { RUN_EXIT as EXIT } from "./exit-codes.js";
import { terminalSafe } from "./terminal-text.js";

export async function selftestCommand(options: { runtime?: string; json?: boolean; workspaceMode?: "auto" | "bind" | "copy"; caCert: string[]; unsafeBreak?: Breakable }): Promise<number> {
  const { docker, baseImages } = await baseImagesFor(true);
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const result = await runSelftest(docker!, baseImages, {
      ...(options.runtime ? { runtime: options.runtime } : {}),
      ...(options.workspaceMode ? { workspaceMode: options.workspaceMode } : {}),
      caCertFiles: options.caCert,
      processEnv: process.env,
      onProgress: (message) => {
        if (!options.json) process.stderr.write(`${message}\n`);
      },
      signal: controller.signal,
      ...(options.unsafeBreak ? { breakOnPurpose: options.unsafeBreak } : {}),
    });
    const failed = result.checks.filter((c) => !c.ok);
    if (options.json) {
      process.stdout.write(`${JSON.stringify({ ok: failed.length === 0, runtime: result.runtime, workspaceMode: result.workspaceMode, checks: result.checks })}\n`);
    } else {
      for (const check of result.checks) {
        process.stdout.write(`${check.ok ? "pass" : "FAIL"}  ${check.name}\n      expected: ${check.expected}\n      seen:     ${terminalSafe(check.seen)}\n`);
      }
      process.stdout.write(
        failed.length === 0
          ? `selftest: all ${result.checks.length} checks passed (runtime ${result.runtime}, workspace mode ${result.workspaceMode})\n`
          : `selftest: ${failed.length} of ${result.checks.length} checks FAILED: ${failed.map((c) => c.name).join("; ")}\n`,
      );
    }
    return failed.length === 0 ? EXIT.completed : EXIT.failed;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
