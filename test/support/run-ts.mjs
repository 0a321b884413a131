// Runs a TypeScript entry point (the demo, the benchmarks) with Node's type stripping, after checking the Node
// version. Node 22.18 and later strip types by default; 22.12 to 22.17 need --experimental-strip-types, so the
// script runs as a child process that gets the flag when this Node needs it. Plain JavaScript that old Node
// versions parse, so that they get one line naming the Node to install instead of a stack trace.
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { requireNode } from "./check-node.mjs";

/** `entry`: a file URL of the .ts to run; `name` prefixes this launcher's own messages. */
export function runTypeScript(entry, name) {
  requireNode("product");
  const flags = ["--disable-warning=ExperimentalWarning"];
  if (!process.features.typescript) flags.push("--experimental-strip-types");
  const child = spawn(process.execPath, [...flags, fileURLToPath(entry), ...process.argv.slice(2)], { stdio: "inherit" });

  // Ctrl-C reaches the child from the terminal (same process group): this process only waits for it. A signal sent
  // to this process alone is passed on.
  process.on("SIGINT", () => {});
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("error", (error) => {
    process.stderr.write(`[${name}] could not start ${process.execPath}: ${error.message}\n`);
    process.exitCode = 1;
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exitCode = code === null ? 1 : code;
  });
}
