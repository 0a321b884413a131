// `npm run demo`: checks the Node version, then runs run-demo.ts with Node's type stripping. Node 22.18 and later
// strip types by default; 22.12 to 22.17 need --experimental-strip-types, so the demo runs as a child process that
// gets the flag when this Node needs it. Plain JavaScript that old Node versions parse, so that they get one line
// naming the Node to install instead of a stack trace.
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath, URL } from "node:url";
import { requireNode } from "../support/check-node.mjs";

requireNode("product");

const flags = ["--disable-warning=ExperimentalWarning"];
if (!process.features.typescript) flags.push("--experimental-strip-types");
const demo = fileURLToPath(new URL("./run-demo.ts", import.meta.url));
const child = spawn(process.execPath, [...flags, demo, ...process.argv.slice(2)], { stdio: "inherit" });

// Ctrl-C reaches the child from the terminal (same process group): this process only waits for it. A signal sent
// to this process alone is passed on.
process.on("SIGINT", () => {});
for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("error", (error) => {
  process.stderr.write(`[demo] could not start ${process.execPath}: ${error.message}\n`);
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
