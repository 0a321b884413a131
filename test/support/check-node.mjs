// The Node version check in front of `npm run demo` and `npm test`: one line that says which Node is needed and how
// to get it, instead of the stack trace an old Node prints when it meets TypeScript files or newer APIs.
// Written so that old Node versions can parse it (no `??`, `?.` or top-level await).
//
//   node test/support/check-node.mjs [product|tests]    exits 1 with the line when this Node is too old
import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath, pathToFileURL, URL } from "node:url";

const PACKAGE_JSON = fileURLToPath(new URL("../../package.json", import.meta.url));
const HOW_TO_GET_IT = 'install it with "nvm install 22" or from https://nodejs.org/en/download';

/** "22.12" from a range of the form ">=22.12" (the only form package.json uses for Node). */
function minimumOf(range, where) {
  const match = /^>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(String(range).trim());
  if (!match) throw new Error(`${where} in ${PACKAGE_JSON} must be a ">=X.Y" range, not ${JSON.stringify(range)}`);
  return [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)];
}

function older(version, minimum) {
  for (let i = 0; i < 3; i++) {
    if (version[i] !== minimum[i]) return version[i] < minimum[i];
  }
  return false;
}

/**
 * The message for this Node, or undefined when it is new enough. `product`: package.json `engines` (the CLI and the
 * demo); `tests`: `devEngines.runtime` too (the test tools need a newer Node 22 than the CLI does).
 */
export function nodeTooOld(purpose, nodeVersion) {
  const pkg = JSON.parse(readFileSync(PACKAGE_JSON, "utf8"));
  const product = minimumOf(pkg.engines && pkg.engines.node, "engines.node");
  const needed = purpose === "tests" ? minimumOf(pkg.devEngines && pkg.devEngines.runtime && pkg.devEngines.runtime.version, "devEngines.runtime.version") : product;
  const current = String(nodeVersion || process.versions.node).replace(/^v/, "").split(".").map(Number);
  if (!older(current, needed)) return undefined;
  const shown = needed[2] === 0 ? `${needed[0]}.${needed[1]}` : needed.join(".");
  const what = purpose === "tests" ? `the tests need Node.js ${shown} or newer (the CLI itself runs on ${product[0]}.${product[1]})` : `perstack needs Node.js ${shown} or newer`;
  return `${what}, and this is Node.js v${current.join(".")}: ${HOW_TO_GET_IT}, then run the command again`;
}

/** Prints the line and exits 1 when this Node is too old for `purpose`. */
export function requireNode(purpose) {
  const message = nodeTooOld(purpose);
  if (message === undefined) return;
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  requireNode(process.argv[2] === "tests" ? "tests" : "product");
}
