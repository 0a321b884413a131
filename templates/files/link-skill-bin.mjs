// Build-time helper: finds the executable an npm package exposes (as npx would choose it) and links it at
// <dir>/entry, so the runtime's MCP configuration can name a fixed path without knowing the bin name.
import { readFileSync, symlinkSync, chmodSync } from "node:fs";
import { join } from "node:path";

const [dir, packageName] = process.argv.slice(2);
const packageDir = join(dir, "node_modules", packageName);
const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8"));
const bareName = packageName.replace(/^@[^/]+\//, "");
let bin = manifest.bin;
if (typeof bin === "object" && bin !== null) {
  const names = Object.keys(bin);
  bin = bin[bareName] ?? (names.length === 1 ? bin[names[0]] : undefined);
}
if (typeof bin !== "string") {
  console.error(`${packageName} has no single executable (bin: ${JSON.stringify(manifest.bin)}); use command + args instead`);
  process.exit(1);
}
const target = join(packageDir, bin);
chmodSync(target, 0o755);
symlinkSync(target, join(dir, "entry"));
console.log(`${packageName}: ${target}`);
