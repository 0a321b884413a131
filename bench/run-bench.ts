// `npm run bench`: measures the sandbox's costs side by side in one run and prints them as a table of figures and
// ratios; nothing here judges a timing (see the README, Benchmarks).
//
//   npm run bench [-- --json] [--quick] [--only p1,p3]
//
//   P1  a trivial sandboxed run against the same engine in a bare `docker run --rm` (median of alternating runs)
//   P2  images built by a second identical run
//   P3  the claude-code collector against raw JSON.parse + append, on a recorded stream replicated to many lines
//   P4  8 trivial runs at once against one
//   P5  bytes under perstack/jobs/<job> per step against raw.log bytes per step, at N and 2N tool steps
//
// --json adds one JSON object with every figure as the last line of stdout. --quick repeats less (a smoke test).
// P1, P2, P4 and P5 need Docker and `npm run build`; P3 needs only the build.
//
// bench.mjs checks the Node version and runs this file with Node's type stripping, so it imports the built product
// from dist/ and uses erasable TypeScript only.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Docker from "dockerode";
import { ensureBaseImages } from "../test/support/ensure-base-images.ts";
import { BenchSession } from "./bench-session.ts";
import { collectorThroughput, type CollectorBudget } from "./collector-throughput.ts";
import { startFake } from "./fake-model.ts";
import { table, type Row } from "./report.ts";
import { benchScript, concurrentRuns, imageReuse, sandboxOverhead, storagePerStep } from "./sandbox-benches.ts";

const BENCHES = ["p1", "p2", "p3", "p4", "p5"] as const;
type BenchName = (typeof BENCHES)[number];
const NEEDS_DOCKER: ReadonlySet<BenchName> = new Set(["p1", "p2", "p4", "p5"]);
/** The fields each benchmark's JSON holds, set to null when it failed. */
const HEADLINE_KEYS: Record<BenchName, string[]> = {
  p1: ["p1Ratio", "p1ColdRatio"],
  p2: ["p2ImagesBuilt"],
  p3: ["p3EventsPerSecond", "p3Ratio"],
  p4: ["p4Ratio"],
  p5: ["p5BytesPerStepRatio", "p5BytesPerStepRatio2N"],
};

interface Settings {
  p1Repeats: number;
  p3Sizes: number[];
  p3Budget: CollectorBudget;
  p4Concurrency: number;
  p4Repeats: number;
  p5Steps: number;
}

const FULL: Settings = {
  p1Repeats: 7,
  p3Sizes: [10_000, 100_000, 200_000],
  p3Budget: { ms: 120_000, bytes: 2 * 1024 ** 3 },
  p4Concurrency: 8,
  p4Repeats: 2,
  p5Steps: 20,
};
const QUICK: Settings = {
  p1Repeats: 3,
  p3Sizes: [10_000, 100_000],
  p3Budget: { ms: 30_000, bytes: 512 * 1024 ** 2 },
  p4Concurrency: 8,
  p4Repeats: 1,
  p5Steps: 5,
};
/** P3's headline figures (p3EventsPerSecond, p3Ratio) are those at this size. */
const P3_HEADLINE_LINES = 100_000;
const P3_RECORDING = "success.jsonl";

const say = (message: string) => process.stderr.write(`[bench] ${message}\n`);

class UsageError extends Error {}

function parseArgs(argv: string[]): { json: boolean; quick: boolean; only: BenchName[] } {
  let json = false;
  let quick = false;
  let only: BenchName[] = [...BENCHES];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--json") json = true;
    else if (arg === "--quick") quick = true;
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg === "--only" ? argv[++i] : arg.slice("--only=".length);
      const names = (value ?? "").split(",").map((name) => name.trim().toLowerCase()).filter(Boolean);
      const unknown = names.filter((name) => !(BENCHES as readonly string[]).includes(name));
      if (names.length === 0 || unknown.length > 0) throw new UsageError(`--only takes a comma-separated list of ${BENCHES.join(", ")}${unknown.length > 0 ? `, not ${unknown.join(", ")}` : ""}`);
      only = BENCHES.filter((name) => names.includes(name));
    } else {
      throw new UsageError(`unknown option ${arg}; usage: npm run bench [-- --json] [--quick] [--only ${BENCHES.join(",")}]`);
    }
  }
  return { json, quick, only };
}

/** The engine, answering, with its base images, and a session that has removed what killed benchmarks left. */
async function dockerSession(): Promise<BenchSession> {
  const docker = new Docker();
  try {
    await docker.ping();
  } catch (error) {
    throw new Error(`Docker is required and did not answer (${(error as Error).message}); start the Docker engine, or run --only p3`, { cause: error });
  }
  const session = new BenchSession(docker, say);
  const stale = await session.cleanup();
  if (stale.length > 0) say(`removed ${stale.join(", ")} left by an earlier benchmark`);
  return session;
}

type Outcome = { result: object; rows: Row[] };

async function runDockerBenches(
  session: BenchSession,
  only: BenchName[],
  settings: Settings,
  record: (name: BenchName, outcome: Outcome) => void,
  failed: (name: BenchName, error: unknown) => void,
  interrupted: () => boolean,
): Promise<void> {
  const { images, problem } = await ensureBaseImages(session.docker, { say });
  if (problem) throw new Error(problem);
  say("starting the fake model server");
  const fake = await startFake(session.docker, images.node.ref, session.id);
  await fake.script(benchScript([settings.p5Steps, 2 * settings.p5Steps]));
  const runs: Array<[BenchName, () => Promise<Outcome>]> = [
    ["p1", () => sandboxOverhead(session, fake, settings.p1Repeats, say)],
    ["p2", () => imageReuse(session, fake, say)],
    ["p4", () => concurrentRuns(session, fake, settings.p4Concurrency, settings.p4Repeats, say)],
    ["p5", () => storagePerStep(session, fake, settings.p5Steps, say)],
  ];
  for (const [name, run] of runs) {
    if (!only.includes(name) || interrupted()) continue;
    try {
      record(name, await run());
    } catch (error) {
      failed(name, error);
    }
  }
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    say(error.message);
    return 2;
  }
  const settings = args.quick ? QUICK : FULL;
  if (!existsSync(fileURLToPath(new URL("../dist/src/cli/entry.js", import.meta.url)))) {
    say("dist/ is missing: run npm run build first");
    return 1;
  }

  const figures: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  const rows = new Map<BenchName, Row[]>();
  const record = (name: BenchName, outcome: Outcome) => {
    Object.assign(figures, outcome.result);
    rows.set(name, outcome.rows);
  };
  const failed = (name: BenchName, error: unknown) => {
    errors[name] = (error as Error).message;
    for (const key of HEADLINE_KEYS[name]) figures[key] = null;
    rows.set(name, [{ measure: `${name.toUpperCase()} failed`, value: "-", detail: (error as Error).message.slice(0, 300) }]);
    say(`${name.toUpperCase()} failed: ${(error as Error).message}`);
  };

  let interrupted = false;
  let session: BenchSession | undefined;
  const onSignal = () => {
    interrupted = true;
    say("interrupted: stopping the runs in progress and cleaning up");
    session?.interrupt();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    const dockerBenches = args.only.filter((name) => NEEDS_DOCKER.has(name));
    if (dockerBenches.length > 0) {
      try {
        session = await dockerSession();
        await runDockerBenches(session, args.only, settings, record, failed, () => interrupted);
      } catch (error) {
        // The set-up failed (Docker, base images, the fake model server): every Docker benchmark not yet run failed.
        for (const name of dockerBenches) if (!rows.has(name)) failed(name, error);
      } finally {
        const removed = (await session?.cleanup().catch((error: unknown) => {
          say(`cleanup failed: ${(error as Error).message}`);
          return [];
        })) ?? [];
        if (session) say(`cleaned up ${removed.length} container(s), network(s) and volume(s) the benchmark or its runs left`);
      }
    }
    if (args.only.includes("p3") && !interrupted) {
      try {
        record("p3", await collectorThroughput(P3_RECORDING, settings.p3Sizes, P3_HEADLINE_LINES, settings.p3Budget, say));
      } catch (error) {
        failed("p3", error);
      }
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }

  process.stdout.write(`\n${table(BENCHES.flatMap((name) => rows.get(name) ?? []))}\n`);
  if (args.json) {
    const summary = {
      ...figures,
      benches: args.only,
      quick: args.quick,
      ...(Object.keys(errors).length > 0 ? { errors } : {}),
      node: process.version,
      measuredAt: new Date().toISOString(),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  }
  if (interrupted) return 130;
  return Object.keys(errors).length > 0 ? 1 : 0;
}

process.exitCode = await main();
