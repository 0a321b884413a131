// Builds the web console (console/) into dist/console: index.html, assets/app.js (Preact and the app, one ES module)
// and assets/app.css. esbuild only: no network, no type check (npm run lint checks the console's types).
// src/server/console-assets.ts serves exactly these three files.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "console");

// A file left from an earlier build would not be served anyway; a clean directory shows what is.
await rm(out, { recursive: true, force: true });
await mkdir(join(out, "assets"), { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: [
    { in: "console/src/main.tsx", out: "app" },
    { in: "console/styles.css", out: "app" },
  ],
  outdir: join(out, "assets"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});
await copyFile(join(root, "console", "index.html"), join(out, "index.html"));
