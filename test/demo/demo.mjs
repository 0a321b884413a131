// `npm run demo`: run-demo.ts under Node's type stripping, after the Node version check (see test/support/run-ts.mjs).
import { URL } from "node:url";
import { runTypeScript } from "../support/run-ts.mjs";

runTypeScript(new URL("./run-demo.ts", import.meta.url), "demo");
