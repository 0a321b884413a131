// `node --import <this file> ...`: prints "perstack-test-package <name>" on stderr for each npm package the program
// loads, for test/unit/cli/lazy-loading.test.ts.
import { register } from "node:module";

register("./record-packages-hooks.mjs", import.meta.url);
