import { describe, expect, it } from "vitest";
import { insideRoot, policyPaths } from "../../../src/plan/policy-files.js";

describe("policyPaths", () => {
  const base = { workspace: "/p", cwd: "/p", configPath: "/p/perstack.toml", configExplicit: false, envPath: [".env", ".env.local"], perstackDir: "/p/perstack" };

  it("protects the config, the envPath files (existing or not) and perstack/", () => {
    expect(policyPaths(base)).toEqual({ files: [".env", ".env.local", "perstack.toml"], trees: ["perstack"] });
  });

  it("follows envPath relative to the config's directory, and leaves out what is outside the workspace", () => {
    expect(policyPaths({ ...base, workspace: "/p/app", cwd: "/p/app", envPath: ["app/.env", "../secrets/.env", "/etc/x.env"], perstackDir: "/p/app/perstack" })).toEqual({
      files: [".env", "perstack.toml"],
      trees: ["perstack"],
    });
  });

  it("protects every perstack.toml the next walk up from cwd would find first", () => {
    expect(policyPaths({ ...base, cwd: "/p/a/b", perstackDir: "/p/a/b/perstack" }).files).toEqual([".env", ".env.local", "a/b/perstack.toml", "a/perstack.toml", "perstack.toml"]);
    expect(policyPaths({ ...base, cwd: "/p/a/b", configExplicit: true, perstackDir: "/p/a/b/perstack" }).files).toEqual([".env", ".env.local", "perstack.toml"]);
  });

  it("has nothing to protect when the config lives outside the workspace", () => {
    expect(policyPaths({ ...base, workspace: "/w", cwd: "/p", perstackDir: "/p/perstack" })).toEqual({ files: [], trees: [] });
  });

  it("insideRoot refuses the root itself and anything outside it", () => {
    expect(insideRoot("/p", "/p")).toBeUndefined();
    expect(insideRoot("/p", "/p/../q")).toBeUndefined();
    expect(insideRoot("/p", "/p/a/./b")).toBe("a/b");
  });
});
