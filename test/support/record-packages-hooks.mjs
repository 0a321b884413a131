// Module hooks for record-packages.mjs: each npm package, once, as the loader resolves it.
import { writeSync } from "node:fs";

const seen = new Set();

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(resolved.url);
  if (match && !seen.has(match[1])) {
    seen.add(match[1]);
    writeSync(2, `perstack-test-package ${match[1]}\n`);
  }
  return resolved;
}
