import { describe, expect, it } from "vitest";
import { domainPatternProblem, patternCovers } from "../../../src/config/domain-pattern.js";

describe("allowedDomains patterns", () => {
  it.each(["example.com", "api.example.com", "*.example.com", "a-b.c.example.co.uk", "xn--bcher-kva.example"])("accepts %s", (p) => {
    expect(domainPatternProblem(p)).toBeUndefined();
  });

  it.each([
    ["", "is empty"],
    ["*", "bare wildcard"],
    ["*.com", "at least two labels"],
    ["api.*.example.com", "leading '*.'"],
    ["*example.com", "leading '*.'"],
    ["https://example.com", "not a URL"],
    ["example.com/path", "without a path"],
    ["example.com:443", "without a port"],
    ["10.0.0.1", "IP address"],
    ["[::1]", "without a port"],
    ["Example.com", "lowercase"],
    ["exa mple.com", "whitespace"],
    ["exämple.com", "non-ASCII"],
    ["example.com.", "end with a dot"],
    ["-bad.example.com", "invalid label"],
    ["localhost", "at least two labels"],
    ["example.123", "numeric top-level"],
    ["a\nb.com", "whitespace"],
  ])("rejects %j (%s)", (pattern, why) => {
    expect(domainPatternProblem(pattern)).toContain(why);
  });

  it("a wildcard covers its apex and everything below it, an exact entry only itself", () => {
    expect(patternCovers("*.example.com", "example.com")).toBe(true);
    expect(patternCovers("*.example.com", "a.b.example.com")).toBe(true);
    expect(patternCovers("*.example.com", "badexample.com")).toBe(false);
    expect(patternCovers("api.example.com", "example.com")).toBe(false);
  });
});
