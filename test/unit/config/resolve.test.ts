import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/config/load.js";
import { reachableExperts, readEnvSources, resolveRuntime } from "../../../src/config/resolve.js";
import { UnknownRuntimeError } from "../../../src/errors.js";
import { runtimeAdapter } from "../../../src/runtimes/registry.js";

describe("runtime precedence: --runtime > config runtime > default perstack", () => {
  it.each([
    { flag: undefined, config: undefined, name: "perstack", source: "default" },
    { flag: undefined, config: "claude-code", name: "claude-code", source: "config" },
    { flag: "claude-code", config: undefined, name: "claude-code", source: "flag" },
    { flag: "gemini", config: "claude-code", name: "gemini", source: "flag" },
    { flag: "docker", config: "cursor", name: "docker", source: "flag" },
  ])("flag=$flag config=$config -> $name ($source)", ({ flag, config, name, source }) => {
    expect(resolveRuntime(flag, config)).toEqual({ name, source });
  });

  it("rejects an unknown name, listing the valid ones", () => {
    expect(() => resolveRuntime("claude", undefined)).toThrow(
      '--runtime "claude" is not a runtime (did you mean "claude-code"?); valid runtimes: perstack, local, docker, claude-code, gemini, codex, cursor',
    );
    expect(() => resolveRuntime(undefined, "nope")).toThrow(UnknownRuntimeError);
  });

  it("serves every runtime name; docker is the built-in perstack agent", () => {
    for (const name of ["perstack", "docker"] as const) expect(runtimeAdapter(name).name).toBe("perstack");
    for (const name of ["claude-code", "gemini", "codex", "cursor"] as const) expect(runtimeAdapter(name).name).toBe(name);
  });
});

describe("expert graph", () => {
  it("walks delegates breadth-first, each expert once, cycles included", () => {
    const loaded = parseConfigText(
      `[experts."a"]\ninstruction="a"\ndelegates=["b","c"]\n[experts."b"]\ninstruction="b"\ndelegates=["c","a"]\n[experts."c"]\ninstruction="c"\n[experts."d"]\ninstruction="d"\n`,
      "/p/perstack.toml",
    );
    expect(reachableExperts(loaded, "a").map((e) => e.key)).toEqual(["a", "b", "c"]);
  });
});

describe("env sources", () => {
  it("reads envPath files in order and lets the process environment win", () => {
    const dir = mkdtempSync(join(tmpdir(), "perstack-env-"));
    writeFileSync(join(dir, ".env"), "A=from-env\nB=from-env\nC=from-env\n");
    writeFileSync(join(dir, ".env.local"), "B=from-local\nC=from-local\n");
    const loaded = { ...parseConfigText(`[experts."a"]\ninstruction="a"\n`, join(dir, "perstack.toml")), dir };
    const values = readEnvSources(loaded, { C: "from-process" });
    expect(values.get("A")).toBe("from-env");
    expect(values.get("B")).toBe("from-local");
    expect(values.get("C")).toBe("from-process");
  });
});
