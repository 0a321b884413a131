import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packagePath } from "../../../src/package-root.js";
import { engineClosure, engineContextFiles, engineLockfile, importSpecifiers, packageOfSpecifier, type Lockfile } from "../../../src/runtimes/engine-files.js";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function fakeDist(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "perstack-dist-"));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

describe("engine files", () => {
  it("finds static, re-export, side-effect and literal dynamic imports", () => {
    const source = `import { a } from "./a.js";\nimport {\n  b,\n  c,\n} from '../b.js';\nexport * from "./c.js";\nimport "./d.js";\nconst e = await import("./e.js");\nimport(name);\nimport x from "@scope/pkg/sub.js";\nimport "node:fs";\n`;
    expect(importSpecifiers(source).sort()).toEqual(["../b.js", "./a.js", "./c.js", "./d.js", "./e.js", "@scope/pkg/sub.js", "node:fs"].sort());
    expect([packageOfSpecifier("@scope/pkg/sub.js"), packageOfSpecifier("zod"), packageOfSpecifier("node:fs"), packageOfSpecifier("path")]).toEqual(["@scope/pkg", "zod", undefined, undefined]);
  });

  it("follows relative imports across directories and collects bare packages", () => {
    const dist = fakeDist({
      "src/engine/main.js": `import { x } from "./lib.js";\nimport "zod";\n`,
      "src/engine/lib.js": `export * from "../errors.js";\nconst m = () => import("./lazy.js");\n`,
      "src/errors.js": `import { fs } from "node:fs";\n`,
      "src/engine/lazy.js": `import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";\n`,
      "src/engine/unused.js": ``,
    });
    expect(engineClosure(dist, ["src/engine/main.js"])).toEqual({
      files: ["src/engine/lazy.js", "src/engine/lib.js", "src/engine/main.js", "src/errors.js"],
      packages: ["@modelcontextprotocol/sdk", "zod"],
    });
  });

  it("says to build when a file is missing", () => {
    const dist = fakeDist({ "src/engine/main.js": `import "./gone.js";\n` });
    expect(() => engineClosure(dist, ["src/engine/main.js"])).toThrow(/src\/engine\/gone\.js is missing \(imported by src\/engine\/main\.js\); run npm run build/);
    expect(() => engineContextFiles(join(dist, "nope"))).toThrow(/is missing; run npm run build/);
  });

  it("packs the built base skill with exact versions of what it imports", () => {
    const files = engineContextFiles(packagePath("dist"), ["src/engine/base-skill/server.js"]);
    expect(files[0]!.path).toBe("engine/package.json");
    const manifest = JSON.parse(files[0]!.content);
    expect(Object.keys(manifest.dependencies)).toContain("@modelcontextprotocol/sdk");
    for (const version of Object.values(manifest.dependencies)) expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(files.map((f) => f.path)).toContain("engine/src/engine/base-skill/server.js");
    expect(files.every((f) => f.path.endsWith(".js") || f.path === "engine/package.json" || f.path === "engine/package-lock.json")).toBe(true);
  });
});

describe("engineLockfile", () => {
  const lock: Lockfile = {
    lockfileVersion: 3,
    packages: {
      "": { name: "perstack-sandbox" },
      "node_modules/a": { version: "1.0.0", dependencies: { b: "^2", c: "^1" }, optionalDependencies: { gone: "*" } },
      "node_modules/a/node_modules/b": { version: "2.0.0", peerDependencies: { p: "*", q: "*" }, peerDependenciesMeta: { q: { optional: true } } },
      "node_modules/b": { version: "1.0.0", dev: true },
      "node_modules/c": { version: "1.5.0", dev: true },
      "node_modules/p": { version: "3.0.0" },
      "node_modules/unrelated": { version: "9.9.9" },
    },
  };

  it("keeps what the dependencies resolve to, the way Node resolves, and drops dev flags", () => {
    const out = engineLockfile(lock, { a: "1.0.0" });
    expect(Object.keys(out.packages)).toEqual(["", "node_modules/a", "node_modules/a/node_modules/b", "node_modules/c", "node_modules/p"]);
    expect(out.packages[""]).toEqual({ name: "perstack-engine", dependencies: { a: "1.0.0" } });
    expect(out.packages["node_modules/c"]).toEqual({ version: "1.5.0" });
  });

  it("refuses a lockfile that does not hold the installed version or a required dependency", () => {
    expect(() => engineLockfile(lock, { a: "1.0.1" })).toThrow(/does not hold a@1\.0\.1/);
    const broken: Lockfile = { lockfileVersion: 3, packages: { "node_modules/a": { version: "1.0.0", dependencies: { missing: "*" } } } };
    expect(() => engineLockfile(broken, { a: "1.0.0" })).toThrow(/no missing for node_modules\/a/);
    expect(() => engineLockfile({ lockfileVersion: 1 }, {})).toThrow(/v2 or v3/);
  });

  it("the engine's context carries a lockfile matching its package.json", () => {
    const files = engineContextFiles();
    const manifest = JSON.parse(files.find((f) => f.path === "engine/package.json")!.content) as { dependencies: Record<string, string> };
    const engineLock = JSON.parse(files.find((f) => f.path === "engine/package-lock.json")!.content) as Required<Lockfile>;
    expect(engineLock.packages[""]!.dependencies).toEqual(manifest.dependencies);
    for (const [name, version] of Object.entries(manifest.dependencies)) expect(engineLock.packages[`node_modules/${name}`]!.version).toBe(version);
  });
});
