import { describe, expect, it } from "vitest";
import { parseProxyLogLine } from "../../../src/collector/proxy-log.js";

describe("proxy access log", () => {
  it("reads an allowed CONNECT", () => {
    expect(parseProxyLogLine("1700000000.123 TCP_TUNNEL 200 CONNECT api.anthropic.com:443 allowlisted")).toEqual({
      action: "allowed", domain: "api.anthropic.com", port: 443, reason: "allowlisted", method: "CONNECT", status: 200,
    });
  });

  it("reads a denied plain request, keeping only host and port", () => {
    const decision = parseProxyLogLine("1700000000.123 TCP_DENIED 403 GET http://blocked.example:8080/secret?token=abc not-allowlisted");
    expect(decision).toEqual({ action: "blocked", domain: "blocked.example", port: 8080, reason: "not-allowlisted", method: "GET", status: 403 });
    expect(JSON.stringify(decision)).not.toContain("token");
  });

  it("reads IPv6 literals and lines without a note", () => {
    expect(parseProxyLogLine("1.0 TCP_DENIED 403 CONNECT [::1]:443 -")).toMatchObject({ domain: "::1", port: 443, action: "blocked" });
    expect(parseProxyLogLine("1.0 TCP_MISS 200 POST http://host.docker.internal:11434/v1/messages")).toMatchObject({ action: "allowed", port: 11434 });
  });

  it("ignores junk", () => {
    for (const line of ["", "garbage", "1.0 TCP_MISS 200 GET not-a-url -"]) expect(parseProxyLogLine(line)).toBeUndefined();
  });
});
