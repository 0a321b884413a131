// `npm run bench`: run-bench.ts under Node's type stripping, after the Node version check (see test/support/run-ts.mjs).
import { URL } from "node:url";
import { runTypeScript } from "../test/support/run-ts.mjs";

runTypeScript(new URL("./run-bench.ts", import.meta.url), "bench");
