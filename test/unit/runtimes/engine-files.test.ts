import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { packagePath } from "../../../src/package-root.js";
import { engineClosure, engineContextFiles, importSpecifiers, packageOfSpecifier } from "../../../src/runtimes/engine-files.js";

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
    expect(files.every((f) => f.path.endsWith(".js") || f.path === "engine/package.json")).toBe(true);
  });
});
