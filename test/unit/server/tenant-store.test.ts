// The tenant store (src/server/tenant-store.ts), its database (server-db.ts) and key file (server-key.ts), on real
// files in a temporary directory: what reaches the disk, what authenticates, and what is refused.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, describe, expect, it } from "vitest";
import { BadInputError } from "../../../src/errors.js";
import { MIGRATIONS, openServerDb } from "../../../src/server/server-db.js";
import { decryptSecret, encryptSecret, loadServerKey, SecretDecryptError, SERVER_KEY_BYTES, ServerKeyError } from "../../../src/server/server-key.js";
import {
  hashToken,
  InvalidTenantInputError,
  SecretNotFoundError,
  TenantExistsError,
  TenantNotFoundError,
  TenantStore,
  tokenTenant,
  verifyToken,
} from "../../../src/server/tenant-store.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-tenants-"));
  dirs.push(dir);
  return join(dir, "data");
}

/** Every byte the store has put on disk: server.db, its WAL and shared-memory files, the key. */
function bytesOnDisk(dir: string): Buffer {
  return Buffer.concat(readdirSync(dir).map((file) => readFileSync(join(dir, file))));
}

describe("server database", () => {
  it("is created with its directory (0700) and file (0600), in WAL mode, at the latest schema version", () => {
    const dir = dataDir();
    const db = openServerDb(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "server.db")).mode & 0o777).toBe(0o600);
    expect(db.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(db.prepare("PRAGMA user_version").get()).toEqual({ user_version: MIGRATIONS.length });
    expect((db.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout).toBeGreaterThan(0);
    db.close();
    // Opening again applies nothing twice.
    openServerDb(dir).close();
  });

  it("refuses a database written by a newer perstack, and a file that is not a database, in words", () => {
    const dir = dataDir();
    const db = openServerDb(dir);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => openServerDb(dir)).toThrow(/server\.db was written by a newer perstack .* upgrade perstack/);

    const other = dataDir();
    openServerDb(other).close();
    rmSync(join(other, "server.db"));
    writeFileSync(join(other, "server.db"), "not a database at all, but long enough to have a header of some kind".repeat(20), { mode: 0o600 });
    expect(() => openServerDb(other)).toThrow(/server\.db is damaged or not a perstack server database; restore it from a backup or point --data elsewhere$/);
  });
});

describe("tenants and tokens", () => {
  it("a token is pst_<name>_<43 characters>, authenticates its tenant, and is stored only as a scrypt hash", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir);
    const token = await store.add("team_a-1", { maxConcurrent: 2, maxCostPerDay: 12.5, runtimes: ["perstack", "claude-code", "perstack"] });
    expect(token).toMatch(/^pst_team_a-1_[A-Za-z0-9_-]{43}$/);
    expect(tokenTenant(token)).toBe("team_a-1");
    expect(await store.authenticate(token)).toEqual({ name: "team_a-1", maxConcurrent: 2, maxCostPerDay: 12.5, runtimes: ["perstack", "claude-code"], createdAt: expect.any(Number) });

    const db = openServerDb(dir);
    const stored = (db.prepare("SELECT token_hash FROM tenants").get() as { token_hash: string }).token_hash;
    db.close();
    expect(stored).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyToken(token, stored)).toBe(true);

    const random = token.slice(-43);
    for (const bytes of [bytesOnDisk(dir), (store.close(), bytesOnDisk(dir))]) {
      expect(bytes.includes(token)).toBe(false);
      expect(bytes.includes(random)).toBe(false);
      expect(bytes.includes(Buffer.from(random, "base64url"))).toBe(false);
    }
  });

  it("list shows limits and secret names, never a token, hash or value", async () => {
    const store = TenantStore.open(dataDir());
    await store.add("b");
    await store.add("a", { runtimes: ["codex"] });
    store.setSecret("a", "OPENAI_API_KEY", "sk-list-value");
    const listed = store.list();
    expect(listed).toEqual([
      { name: "a", runtimes: ["codex"], createdAt: expect.any(Number), secrets: ["OPENAI_API_KEY"] },
      { name: "b", createdAt: expect.any(Number), secrets: [] },
    ]);
    expect(JSON.stringify(listed)).not.toMatch(/scrypt|sk-list-value|pst_/);
    store.close();
  });

  it("a token is checked whole: the name part picks the row, it is not trusted", async () => {
    const store = TenantStore.open(dataDir(), { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    const a = await store.add("alpha");
    await store.add("beta");
    const forged = `pst_beta_${a.slice(-43)}`;
    expect(await store.authenticate(forged)).toBeUndefined();
    expect(await store.authenticate(`${a.slice(0, -1)}${a.endsWith("A") ? "B" : "A"}`)).toBeUndefined();
    for (const junk of ["", "pst_", "Bearer x", `pst_alpha_${"a".repeat(42)}`, `pst_alpha_${"a".repeat(44)}`, `${a} `, `pst_al pha_${a.slice(-43)}`]) {
      expect(await store.authenticate(junk)).toBeUndefined();
    }
    expect((await store.authenticate(a))?.name).toBe("alpha");
    store.close();
  });

  it("a token for a missing tenant costs a scrypt too, as long as a wrong token for an existing one", async () => {
    // The missing-tenant path hashes against a dummy; without it this would answer in microseconds.
    const store = TenantStore.open(dataDir());
    const token = await store.add("present");
    const wrong = `pst_present_${"A".repeat(43)}`;
    const missing = `pst_absent_${"A".repeat(43)}`;
    const median = async (candidate: string) => {
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        expect(await store.authenticate(candidate)).toBeUndefined();
        times.push(performance.now() - start);
      }
      return times.sort((x, y) => x - y)[2]!;
    };
    const [wrongMs, missingMs] = [await median(wrong), await median(missing)];
    expect(missingMs).toBeGreaterThan(wrongMs * 0.4);
    expect(wrongMs).toBeGreaterThan(missingMs * 0.4);
    // Failures are never cached: each costs scrypt, and a verified token afterwards does not.
    expect(await store.authenticate(token)).toBeDefined();
    const start = performance.now();
    expect(await store.authenticate(token)).toBeDefined();
    expect(performance.now() - start).toBeLessThan(missingMs / 2);
    store.close();
  });

  it("rotate: the old token stops working at once, even when remembered, and in another process's store", async () => {
    const dir = dataDir();
    const server = TenantStore.open(dir);
    const admin = TenantStore.open(dir);
    const old = await admin.add("team");
    expect(await server.authenticate(old)).toBeDefined(); // now remembered for a minute
    expect(await admin.authenticate(old)).toBeDefined();
    const fresh = await admin.rotate("team");
    expect(fresh).not.toBe(old);
    expect(await admin.authenticate(old)).toBeUndefined();
    expect(await server.authenticate(old)).toBeUndefined();
    expect((await server.authenticate(fresh))?.name).toBe("team");
    await expect(admin.rotate("nobody")).rejects.toThrow(TenantNotFoundError);
    server.close();
    admin.close();
  });

  it("a remembered token is verified again once its minute is over", async () => {
    let now = 1_000_000;
    const store = TenantStore.open(dataDir(), { now: () => now });
    const token = await store.add("t");
    await store.authenticate(token);
    const fast = performance.now();
    await store.authenticate(token);
    const fastMs = performance.now() - fast;
    now += 61_000;
    const slow = performance.now();
    expect(await store.authenticate(token)).toBeDefined();
    expect(performance.now() - slow).toBeGreaterThan(fastMs);
    store.close();
  });

  it("remove: the token stops working, the secrets go too, and the name is free again", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir);
    const token = await store.add("gone");
    store.setSecret("gone", "A_KEY", "value-a");
    store.setSecret("gone", "B_KEY", "value-b");
    expect(await store.authenticate(token)).toBeDefined();
    expect(store.remove("gone")).toBe(2);
    expect(await store.authenticate(token)).toBeUndefined();
    expect(store.list()).toEqual([]);
    const db = openServerDb(dir);
    expect(db.prepare("SELECT count(*) AS n FROM tenant_secrets").get()).toEqual({ n: 0 });
    db.close();
    expect(() => store.remove("gone")).toThrow(TenantNotFoundError);
    expect(() => store.secretValues("gone")).toThrow(/no tenant named "gone"/);
    await store.add("gone");
    store.close();
  });

  it("refuses bad names, limits and duplicates in one clear line", async () => {
    const store = TenantStore.open(dataDir(), { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    for (const name of ["", "a b", "a.b", "../x", "é", "x".repeat(65)]) {
      await expect(store.add(name)).rejects.toThrow(InvalidTenantInputError);
    }
    await expect(store.add("x".repeat(64))).resolves.toMatch(/^pst_x{64}_/);
    await expect(store.add("l", { maxConcurrent: 0 })).rejects.toThrow(/max concurrent runs must be a whole number of at least 1, not 0/);
    await expect(store.add("l", { maxConcurrent: 1.5 })).rejects.toThrow(InvalidTenantInputError);
    await expect(store.add("l", { maxCostPerDay: 0 })).rejects.toThrow(/max cost per day must be an amount of US dollars above 0/);
    await expect(store.add("l", { maxCostPerDay: Number.NaN })).rejects.toThrow(InvalidTenantInputError);
    await expect(store.add("l", { runtimes: [] })).rejects.toThrow(/runtimes list is empty/);
    // @ts-expect-error -- a runtime name from outside (the CLI's --runtimes) is checked here
    await expect(store.add("l", { runtimes: ["claude"] })).rejects.toThrow(/"claude" is not a runtime \(did you mean "claude-code"\?\); valid runtimes: perstack, /);
    await store.add("Team");
    await expect(store.add("Team")).rejects.toThrow(/^tenant "Team" already exists; perstack tenants rotate Team gives it a new token$/);
    await expect(store.add("team")).rejects.toThrow(TenantExistsError);
    await expect(store.add("team")).rejects.toThrow(/names may not differ in case only/);
    await expect(store.rotate("tema")).rejects.toThrow(/no tenant named "tema" in .*data \(did you mean "Team"\?\)/);
    store.close();
  });

  it("hash parameters travel with the hash: a token hashed with other parameters still verifies", async () => {
    const light = await hashToken("pst_x_token", { N: 2 ** 12, r: 4, p: 2 });
    expect(light).toMatch(/^\$scrypt\$ln=12,r=4,p=2\$/);
    expect(await verifyToken("pst_x_token", light)).toBe(true);
    expect(await verifyToken("pst_x_tokeN", light)).toBe(false);
    expect(await verifyToken("pst_x_token", "$scrypt$ln=40,r=8,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA")).toBe(false);
    expect(await verifyToken("pst_x_token", "plain")).toBe(false);
  });
});

describe("secrets", () => {
  it("are stored only encrypted, decrypt for the runner, and are replaced and removed by name", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("acme");
    const value = "sk-ant-very-secret-value-0123456789";
    expect(store.setSecret("acme", "ANTHROPIC_API_KEY", value)).toBe(false);
    expect(store.setSecret("acme", "__proto__", "odd but a valid name")).toBe(false);
    expect(store.secretNames("acme")).toEqual(["ANTHROPIC_API_KEY", "__proto__"]);
    const values = store.secretValues("acme");
    expect(Object.keys(values)).toEqual(["ANTHROPIC_API_KEY", "__proto__"]);
    expect(values.ANTHROPIC_API_KEY).toBe(value);
    expect(Object.getPrototypeOf(values)).toBe(Object.prototype);
    for (const bytes of [bytesOnDisk(dir), (store.close(), bytesOnDisk(dir))]) {
      expect(bytes.includes(value)).toBe(false);
      expect(bytes.includes(Buffer.from(value, "utf16le"))).toBe(false);
    }
    const again = TenantStore.open(dir);
    expect(again.setSecret("acme", "ANTHROPIC_API_KEY", "sk-new")).toBe(true);
    expect(again.secretValues("acme").ANTHROPIC_API_KEY).toBe("sk-new");
    again.removeSecret("acme", "__proto__");
    expect(() => again.removeSecret("acme", "ANTHROPIC_API_KY")).toThrow(/tenant "acme" has no secret ANTHROPIC_API_KY \(did you mean ANTHROPIC_API_KEY\?\); its secrets: ANTHROPIC_API_KEY/);
    expect(() => again.removeSecret("acme", "X")).toThrow(SecretNotFoundError);
    expect(again.secretNames("acme")).toEqual(["ANTHROPIC_API_KEY"]);
    again.close();
  });

  it("refuses bad names and values, and a missing tenant", async () => {
    const store = TenantStore.open(dataDir(), { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("acme");
    for (const name of ["", "1KEY", "A-B", "A B", "Ä", "A".repeat(129)]) {
      expect(() => store.setSecret("acme", name, "v")).toThrow(/is not an environment variable name/);
    }
    expect(() => store.setSecret("acme", "K", "")).toThrow(/the value of K is empty/);
    expect(() => store.setSecret("acme", "K", "a\0b")).toThrow(/NUL/);
    expect(() => store.setSecret("acme", "K", "x".repeat(64 * 1024 + 1))).toThrow(/larger than 64 KiB/);
    expect(() => store.setSecret("acm", "K", "v")).toThrow(/no tenant named "acm" .*\(did you mean "acme"\?\)/);
    expect(() => store.setSecret("acm", "K", "v")).toThrow(BadInputError);
    store.close();
  });

  it("are bound to their tenant and name: a row copied to another tenant, or renamed, does not decrypt", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("victim");
    await store.add("thief");
    store.setSecret("victim", "OPENAI_API_KEY", "sk-victim");
    const db = openServerDb(dir);
    db.exec("INSERT INTO tenant_secrets (tenant, name, iv, ciphertext, tag, updated_at) SELECT 'thief', name, iv, ciphertext, tag, updated_at FROM tenant_secrets WHERE tenant = 'victim'");
    expect(() => store.secretValues("thief")).toThrow(SecretDecryptError);
    expect(() => store.secretValues("thief")).toThrow(/secret OPENAI_API_KEY of tenant "thief" does not decrypt with this server key/);
    db.exec("UPDATE tenant_secrets SET name = 'ANTHROPIC_API_KEY' WHERE tenant = 'victim'");
    expect(() => store.secretValues("victim")).toThrow(SecretDecryptError);
    db.close();
    store.close();
  });

  it("AES-256-GCM with the owner as additional data: another key, tenant, name or a flipped bit fails", () => {
    const key = Buffer.alloc(32, 7);
    const sealed = encryptSecret(key, "value", { tenant: "a", name: "K" });
    expect(sealed.iv).toHaveLength(12);
    expect(sealed.tag).toHaveLength(16);
    expect(decryptSecret(key, sealed, { tenant: "a", name: "K" })).toBe("value");
    // A fresh IV each time: the same value never looks the same twice.
    expect(encryptSecret(key, "value", { tenant: "a", name: "K" }).ciphertext.equals(sealed.ciphertext)).toBe(false);
    expect(() => decryptSecret(Buffer.alloc(32, 8), sealed, { tenant: "a", name: "K" })).toThrow(SecretDecryptError);
    expect(() => decryptSecret(key, sealed, { tenant: "b", name: "K" })).toThrow(SecretDecryptError);
    expect(() => decryptSecret(key, sealed, { tenant: "a", name: "L" })).toThrow(SecretDecryptError);
    // The separator keeps ("a", "bK") and ("ab", "K") apart.
    expect(() => decryptSecret(key, sealed, { tenant: "", name: "aK" })).toThrow(SecretDecryptError);
    const flipped = { ...sealed, ciphertext: Buffer.from(sealed.ciphertext) };
    flipped.ciphertext[0]! ^= 1;
    expect(() => decryptSecret(key, flipped, { tenant: "a", name: "K" })).toThrow(SecretDecryptError);
  });
});

describe("server key file", () => {
  it("is created once: 32 bytes, mode 0600, and read back unchanged", () => {
    const dir = dataDir();
    const key = loadServerKey(dir);
    const path = join(dir, "server.key");
    expect(key).toHaveLength(SERVER_KEY_BYTES);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadServerKey(dir).equals(key)).toBe(true);
    expect(readFileSync(path).equals(key)).toBe(true);
    // No temporary file is left beside it.
    expect(readdirSync(dir)).toEqual(["server.key"]);
  });

  it("a store reads the key only when a secret is set or read", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("t");
    store.list();
    expect(existsSync(join(dir, "server.key"))).toBe(false);
    store.setSecret("t", "K", "v");
    expect(existsSync(join(dir, "server.key"))).toBe(true);
    store.close();
  });

  it("is refused, naming the file and what to do, when others may read it or its size is wrong", async () => {
    const dir = dataDir();
    loadServerKey(dir);
    const path = join(dir, "server.key");
    chmodSync(path, 0o644);
    expect(() => loadServerKey(dir)).toThrow(ServerKeyError);
    expect(() => loadServerKey(dir)).toThrow(`${path} is open to other users (mode 0644); a server key must be readable by its owner only: run chmod 600 ${path}`);
    chmodSync(path, 0o640);
    expect(() => loadServerKey(dir)).toThrow(/mode 0640/);
    chmodSync(path, 0o600);
    writeFileSync(path, Buffer.alloc(16));
    expect(() => loadServerKey(dir)).toThrow(`${path} holds 16 bytes, not 32: not a perstack server key; restore the right file, or move it away to create a new key (then set every tenant secret again)`);
    writeFileSync(path, "");
    expect(() => loadServerKey(dir)).toThrow(/holds 0 bytes, not 32/);
    // The store says the same when a secret needs the key; the bad file is left as it was.
    const store = TenantStore.open(dir, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("t");
    expect(() => store.setSecret("t", "K", "v")).toThrow(ServerKeyError);
    expect(statSync(path).size).toBe(0);
    store.close();
  });

  it("a key replaced under stored secrets makes them fail to decrypt, with what to do", async () => {
    const dir = dataDir();
    const store = TenantStore.open(dir, { scrypt: { N: 2 ** 10, r: 8, p: 1 } });
    await store.add("t");
    store.setSecret("t", "K", "v");
    store.close();
    rmSync(join(dir, "server.key"));
    const after = TenantStore.open(dir);
    expect(() => after.secretValues("t")).toThrow(/secret K of tenant "t" does not decrypt with this server key \(the key file was replaced, or the row was altered\); set it again with perstack tenants secret set/);
    after.close();
  });
});
