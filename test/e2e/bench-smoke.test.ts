// `npm run bench` must run and report: a quick pass of the image-reuse benchmark (two real sandboxed runs) and the
// collector benchmark, whose last stdout line is the JSON summary. Only its shape is checked, never a timing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv } from "../support/cli.js";
import { requireDocker } from "../support/docker.js";

const docker = await requireDocker();
/** What `npm run bench` runs (package.json). */
const BENCH = fileURLToPath(new URL("../../bench/bench.mjs", import.meta.url));
/** The first run may build the agent, proxy and gateway images. */
const TIMEOUT_MS = 20 * 60_000;

describe.skipIf(!docker)("npm run bench", () => {
  const cwd = mkdtempSync(join(tmpdir(), "perstack-bench-test-"));
  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  it(
    "--quick --json --only p2,p3 ends with one JSON line holding numeric p2 and p3 figures",
    async () => {
      const result = await execa(process.execPath, [BENCH, "--quick", "--json", "--only", "p2,p3"], {
        cwd,
        env: cliEnv(),
        extendEnv: false,
        reject: false,
        all: true,
        timeout: TIMEOUT_MS,
      });
      expect(result.exitCode, result.all).toBe(0);
      const last = result.stdout.trimEnd().split("\n").at(-1) ?? "";
      const summary = JSON.parse(last) as Record<string, unknown>;
      for (const key of ["p2ImagesBuilt", "p3EventsPerSecond", "p3Ratio"]) {
        expect(typeof summary[key], `${key} in ${last}`).toBe("number");
        expect(Number.isFinite(summary[key]), `${key} in ${last}`).toBe(true);
      }
      expect(summary.benches).toEqual(["p2", "p3"]);
      expect(summary.errors).toBeUndefined();
      // The table comes first, one row per figure.
      expect(result.stdout).toContain("P2 images built by a second identical run");
      expect(result.stdout).toContain("P3 collector / raw parse+append, 100,000 lines");
    },
    TIMEOUT_MS + 60_000,
  );
});
