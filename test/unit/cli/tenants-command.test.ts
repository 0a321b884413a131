// `perstack tenants`: the built CLI as an operator runs it (add, list, rotate, secret set/remove, remove, with and
// without --json; bad input is one line and exit code 2), and the stdin rules of `secret set` in process.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, describe, expect, it } from "vitest";
import { tenantsSecretSetCommand, type SecretInput } from "../../../src/cli/tenants-command.js";
import { TenantStore } from "../../../src/server/tenant-store.js";
import { CLI, cliEnv, runCli } from "../../support/cli.js";
import { capturedIo } from "../history/job-fixtures.js";

const root = mkdtempSync(join(tmpdir(), "perstack-tenants-cli-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
function workdir(): string {
  return mkdtempSync(join(root, `w${count++}-`));
}

async function tenants(cwd: string, args: string[], input?: string) {
  const result = await execa(process.execPath, [CLI, "tenants", ...args], { cwd, env: cliEnv(), extendEnv: false, reject: false, input: input ?? "" });
  return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** Bad input: exit code 2, one line on stderr naming the problem, nothing on stdout, no driver's words. */
function expectBadInput(result: { exitCode?: number; stdout: string; stderr: string }, message: RegExp): void {
  expect(result.exitCode).toBe(2);
  expect(result.stdout).toBe("");
  expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(result.stderr).toMatch(/^perstack: /);
  expect(result.stderr).toMatch(message);
  expect(result.stderr).not.toMatch(/sqlite|zod|ExperimentalWarning|at .*\.js:\d+/i);
}

describe("perstack tenants (built CLI)", () => {
  it("add, list, rotate, secret set/remove and remove, with --json", async () => {
    const cwd = workdir();
    const added = await tenants(cwd, ["add", "team-a", "--max-concurrent", "2", "--max-cost-per-day", "$12.50", "--runtimes", "perstack, claude-code", "--json"]);
    expect(added.exitCode).toBe(0);
    expect(added.stderr).toBe(""); // no ExperimentalWarning from node:sqlite, nothing else
    const { name, token } = JSON.parse(added.stdout) as { name: string; token: string };
    expect(name).toBe("team-a");
    expect(token).toMatch(/^pst_team-a_[A-Za-z0-9_-]{43}$/);

    // Without --json: the token alone on stdout, so $(perstack tenants add …) captures it; the note on stderr.
    const plain = await tenants(cwd, ["add", "team-b"]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toMatch(/^pst_team-b_[A-Za-z0-9_-]{43}$/);
    expect(plain.stderr).toMatch(/^added tenant "team-b"; its API token follows, shown this once only/);

    const set = await tenants(cwd, ["secret", "set", "team-a", "ANTHROPIC_API_KEY"], "sk-ant-cli-secret\n");
    expect(set).toMatchObject({ exitCode: 0, stderr: "" });
    expect(set.stdout).toMatch(/^set ANTHROPIC_API_KEY for tenant "team-a" \(stored encrypted with .*perstack-server\/server\.key\)$/);
    expect((await tenants(cwd, ["secret", "set", "team-a", "OPENAI_API_KEY"], "sk-openai\r\n")).exitCode).toBe(0);
    expect((await tenants(cwd, ["secret", "set", "team-a", "OPENAI_API_KEY"], "sk-openai-2")).stdout).toMatch(/^replaced OPENAI_API_KEY/);

    const listed = await tenants(cwd, ["list", "--json"]);
    expect(listed.exitCode).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([
      { name: "team-a", maxConcurrent: 2, maxCostPerDay: 12.5, runtimes: ["perstack", "claude-code"], secrets: ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"], createdAt: expect.any(Number) },
      { name: "team-b", maxConcurrent: null, maxCostPerDay: null, runtimes: null, secrets: [], createdAt: expect.any(Number) },
    ]);
    const table = (await tenants(cwd, ["list"])).stdout.split("\n");
    expect(table[0]).toMatch(/^NAME +MAX-CONCURRENT +MAX-COST\/DAY +RUNTIMES +SECRETS +CREATED$/);
    expect(table[1]).toMatch(/^team-a +2 +\$12\.50 +perstack,claude-code +ANTHROPIC_API_KEY,OPENAI_API_KEY +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(table[2]).toMatch(/^team-b +- +- +all +- +\d{4}-/);

    // The values reached the store, trailing line ending dropped, and are nowhere in plain text on disk.
    const data = join(cwd, "perstack-server");
    const store = TenantStore.open(data);
    expect(store.secretValues("team-a")).toEqual({ ANTHROPIC_API_KEY: "sk-ant-cli-secret", OPENAI_API_KEY: "sk-openai-2" });
    expect((await store.authenticate(token))?.name).toBe("team-a");
    store.close();
    const disk = Buffer.concat(readdirSync(data).map((file) => readFileSync(join(data, file))));
    for (const plainText of [token, "sk-ant-cli-secret", "sk-openai-2"]) expect(disk.includes(plainText)).toBe(false);

    const rotated = await tenants(cwd, ["rotate", "team-a", "--json"]);
    expect(rotated.exitCode).toBe(0);
    const fresh = (JSON.parse(rotated.stdout) as { name: string; token: string }).token;
    expect(fresh).toMatch(/^pst_team-a_/);
    expect(fresh).not.toBe(token);
    const after = TenantStore.open(data);
    expect(await after.authenticate(token)).toBeUndefined();
    expect((await after.authenticate(fresh))?.name).toBe("team-a");
    after.close();

    expect(await tenants(cwd, ["secret", "remove", "team-a", "OPENAI_API_KEY"])).toMatchObject({ exitCode: 0, stdout: 'removed OPENAI_API_KEY from tenant "team-a"' });
    expect(await tenants(cwd, ["remove", "team-a"])).toMatchObject({ exitCode: 0, stdout: 'removed tenant "team-a" and its secret; its token no longer works' });
    expect(JSON.parse((await tenants(cwd, ["list", "--json"])).stdout).map((t: { name: string }) => t.name)).toEqual(["team-b"]);
  });

  it("--data names the directory; list and the others do not create one where it points", async () => {
    const cwd = workdir();
    const added = await tenants(cwd, ["add", "x", "--data", "srv/state", "--json"]);
    expect(added.exitCode).toBe(0);
    expect(readdirSync(join(cwd, "srv", "state")).sort()).toEqual(["server.db"]);
    expect(JSON.parse((await tenants(cwd, ["list", "--json", "--data", "srv/state"])).stdout)).toHaveLength(1);

    const empty = await tenants(cwd, ["list"]);
    expect(empty).toMatchObject({ exitCode: 0, stdout: `no tenants in ${join(cwd, "perstack-server")}; add one with perstack tenants add <name> --data ./perstack-server` });
    expect(await tenants(cwd, ["list", "--json"])).toMatchObject({ exitCode: 0, stdout: "[]" });
    expectBadInput(await tenants(cwd, ["rotate", "x"]), /no tenant named "x": .*perstack-server holds no server data \(server\.db\); check --data/);
    expect(readdirSync(cwd)).toEqual(["srv"]);
  });

  it("bad input: one line, exit code 2, nothing stored", async () => {
    const cwd = workdir();
    expect((await tenants(cwd, ["add", "acme", "--json"])).exitCode).toBe(0);
    expectBadInput(await tenants(cwd, ["add", "acme"]), /tenant "acme" already exists; perstack tenants rotate acme gives it a new token/);
    expectBadInput(await tenants(cwd, ["add", "ACME"]), /names may not differ in case only/);
    expectBadInput(await tenants(cwd, ["add", "a/b"]), /tenant name "a\/b" may hold only letters, digits, '-' and '_' \(1 to 64 of them\)/);
    expectBadInput(await tenants(cwd, ["add", "n", "--max-concurrent", "0"]), /--max-concurrent .*'0' is invalid\. give a positive whole number \(see perstack tenants add --help\)/);
    expectBadInput(await tenants(cwd, ["add", "n", "--max-cost-per-day", "free"]), /--max-cost-per-day .*'free' is invalid/);
    expectBadInput(await tenants(cwd, ["add", "n", "--runtimes", "claude"]), /"claude" is not a runtime \(did you mean "claude-code"\?\)/);
    expectBadInput(await tenants(cwd, ["add", "n", "--runtimes", ","]), /runtimes list is empty/);
    expectBadInput(await tenants(cwd, ["rotate", "acne"]), /no tenant named "acne" in .*perstack-server \(did you mean "acme"\?\)/);
    expectBadInput(await tenants(cwd, ["remove", "nobody"]), /no tenant named "nobody"/);
    expectBadInput(await tenants(cwd, ["secret", "set", "acme", "1KEY"], "v"), /"1KEY" is not an environment variable name/);
    expectBadInput(await tenants(cwd, ["secret", "set", "acme", "KEY"], ""), /stdin was empty: no value for KEY; pipe the value in/);
    expectBadInput(await tenants(cwd, ["secret", "set", "acme", "KEY"], "\n"), /stdin was empty/);
    expectBadInput(await tenants(cwd, ["secret", "set", "nobody", "KEY"], "v"), /no tenant named "nobody"/);
    expectBadInput(await tenants(cwd, ["secret", "remove", "acme", "KEY"]), /tenant "acme" has no secret KEY; its secrets: none/);
    expectBadInput(await tenants(cwd, ["secret", "set", "acme", "KEY"], "x".repeat(70_000)), /larger than 64 KiB/);
    expectBadInput(await tenants(cwd, ["add"]), /missing required argument 'name' \(see perstack tenants add --help\)/);
    expect(JSON.parse((await tenants(cwd, ["list", "--json"])).stdout)).toEqual([expect.objectContaining({ name: "acme", secrets: [] })]);
  });

  it("every subcommand's help has examples", async () => {
    const cwd = workdir();
    for (const command of [[], ["add"], ["list"], ["rotate"], ["remove"], ["secret"], ["secret", "set"], ["secret", "remove"]]) {
      const help = await runCli(["tenants", ...command, "--help"], { cwd });
      expect(help.exitCode).toBe(0);
      expect(help.stdout).toMatch(/\nExamples:\n {2}(printf .*\| )?perstack tenants /);
    }
  });
});

describe("tenants secret set: stdin", () => {
  const dir = () => {
    const data = join(workdir(), "data");
    return data;
  };
  const input = (text: string, isTTY = false): SecretInput => ({ isTTY, read: async () => text });

  it("refuses a terminal: the value would be typed where it shows, and said how to pipe it", async () => {
    const data = dir();
    const store = TenantStore.open(data, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("acme");
    store.close();
    const io = capturedIo(data);
    await expect(tenantsSecretSetCommand("acme", "OPENAI_API_KEY", { data }, io, input("sk-x", true))).rejects.toThrow(
      `perstack tenants secret set reads the value of OPENAI_API_KEY from stdin, not from a terminal; pipe it in: printf '%s' "$OPENAI_API_KEY" | perstack tenants secret set acme OPENAI_API_KEY`,
    );
    expect(await tenantsSecretSetCommand("acme", "OPENAI_API_KEY", { data }, io, input("line one\nline two\n\n"))).toBe(0);
    const after = TenantStore.open(data);
    // One trailing line ending is dropped, nothing else.
    expect(after.secretValues("acme")).toEqual({ OPENAI_API_KEY: "line one\nline two\n" });
    after.close();
  });
});
