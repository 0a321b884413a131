// The CLI loads a command's machinery only when that command runs: `perstack --help`, `log` and `jobs` must not
// pay for the Docker client, the model SDKs or the browser driver (src/cli/main.ts). Runs the built CLI.
import { mkdtempSync, rmSync } from "node:fs";
import module from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../../support/cli.js";

const RECORDER = fileURLToPath(new URL("../../support/record-packages.mjs", import.meta.url));
const REQUIRED = fileURLToPath(new URL("../../support/record-required.mjs", import.meta.url));
const HEAVY = ["dockerode", "docker-modem", "@grpc/grpc-js", "ai", "@ai-sdk/anthropic", "@ai-sdk/openai", "@ai-sdk/google", "@ai-sdk/amazon-bedrock", "@ai-sdk/google-vertex", "google-auth-library", "playwright-core", "execa", "tar-fs", "handlebars", "@modelcontextprotocol/sdk"];

const dir = mkdtempSync(join(tmpdir(), "perstack-lazy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function packagesLoadedBy(args: string[]): Promise<string[]> {
  const result = await execa(process.execPath, ["--import", RECORDER, CLI, ...args], { cwd: dir, reject: false, env: { PERSTACK_STORAGE_PATH: join(dir, "perstack") } });
  return result.stderr
    .split("\n")
    .filter((line) => line.startsWith("perstack-test-package "))
    .map((line) => line.slice("perstack-test-package ".length));
}

describe("what the CLI loads", () => {
  it.each([[["--help"]], [["run", "--help"]], [["log"]], [["jobs"]], [["compare", "--help"]], [["tenants", "list"]]])("perstack %j loads no heavy package", async (args) => {
    const loaded = await packagesLoadedBy(args);
    expect(loaded).toContain("commander");
    expect(loaded.filter((name) => HEAVY.includes(name))).toEqual([]);
  });

  it.runIf(typeof module.registerHooks === "function")("a run loads dockerode without its SSH and gRPC clients, which load when used (DOCKER_HOST=ssh://)", async () => {
    const required = async (env: Record<string, string>) => {
      const result = await execa(process.execPath, ["--import", REQUIRED, CLI, "run", "nobody", "hi", "--config", join(dir, "missing.toml")], {
        cwd: dir,
        reject: false,
        env: { PERSTACK_STORAGE_PATH: join(dir, "perstack"), ...env },
      });
      return { all: result.stderr, names: result.stderr.split("\n").filter((line) => line.startsWith("perstack-test-required ")).map((line) => line.slice(23)) };
    };
    const local = await required({});
    expect(local.names).toContain("dockerode");
    expect(local.names.filter((name) => ["ssh2", "@grpc/grpc-js", "@grpc/proto-loader", "protobufjs"].includes(name))).toEqual([]);
    // Over SSH (to a loopback port nothing listens on) the real SSH client is loaded and tries: refused, not broken.
    const ssh = await required({ DOCKER_HOST: "ssh://nobody@127.0.0.1:1" });
    expect(ssh.names).toContain("ssh2");
    expect(ssh.all).toContain("cannot reach the Docker engine at ssh://nobody@127.0.0.1:1 (nothing answers there)");
  });

  it("a run loads the Docker client but no model SDK (the engine runs in the sandbox)", async () => {
    // --dry-run plans without an engine; the planner is all a run loads before it talks to Docker.
    const loaded = await packagesLoadedBy(["run", "nobody", "hi", "--dry-run", "--config", join(dir, "missing.toml")]);
    expect(loaded.filter((name) => name.startsWith("@ai-sdk/") || name === "ai" || name === "playwright-core")).toEqual([]);
  });
});
