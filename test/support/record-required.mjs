// `node --import <this file> ...`: prints "perstack-test-required <package>" on stderr, at exit, for each npm package
// whose CommonJS modules the program required (the module hooks of record-packages.mjs do not see a CommonJS
// module's own require calls). For test/unit/cli/lazy-loading.test.ts.
import { createRequire } from "node:module";
import process from "node:process";

const cache = createRequire(import.meta.url).cache;
process.on("exit", () => {
  const names = new Set();
  for (const path of Object.keys(cache)) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path.replaceAll("\\", "/"));
    if (match) names.add(match[1]);
  }
  for (const name of names) process.stderr.write(`perstack-test-required ${name}\n`);
});
