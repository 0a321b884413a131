import { describe, expect, it } from "vitest";
import { budgetMessage } from "../../../src/gateway/budget.ts";
import { parseGatewayConfig } from "../../../src/gateway/gateway-config.ts";

const listen = { host: "0.0.0.0", port: 8787 };

describe("the gateway config", () => {
  it("fills in the provider from the protocol and parses the upstream", () => {
    const config = parseGatewayConfig({ protocol: "bedrock", upstream: "https://bedrock-runtime.eu-west-1.amazonaws.com", bedrock: { region: "eu-west-1" }, listen }, "c.json");
    expect(config.provider).toBe("amazon-bedrock");
    expect(config.upstream.host).toBe("bedrock-runtime.eu-west-1.amazonaws.com");
  });

  it.each([
    [{ protocol: "anthropic", upstream: "http://api.anthropic.com", listen }, /upstream "http:" upstreams are refused/],
    [{ protocol: "anthropic", upstream: "https://user:pw@api.anthropic.com", listen }, /upstream must not carry credentials/],
    [{ protocol: "google", upstream: "https://x.example/?key=abc", listen }, /upstream must not have a query/],
    [{ protocol: "anthropic", upstream: "not a url", listen }, /upstream "not a url" is not a URL/],
    [{ protocol: "openai", provider: "anthropic", upstream: "https://x.example", listen }, /provider anthropic speaks the anthropic protocol, not openai/],
    [{ protocol: "bedrock", upstream: "https://x.example", listen }, /bedrock the bedrock protocol needs bedrock.region/],
    [{ protocol: "vertex", upstream: "https://x.example", vertex: { project: "p/../x", location: "us-central1" }, listen }, /vertex.project is not a Google Cloud project id/],
    [{ protocol: "anthropic", upstream: "https://x.example", listen, apiKey: "sk-x" }, /apiKey|Unrecognized key/],
    [{ protocol: "anthropic", upstream: "https://x.example", listen, budgets: { maxCostUsd: -1 } }, /budgets.maxCostUsd/],
  ])("rejects %j", (value, message) => {
    expect(() => parseGatewayConfig(value, "c.json")).toThrow(message);
  });

  it("allows plain http only when asked, for a local model server", () => {
    expect(parseGatewayConfig({ protocol: "ollama", upstream: "http://host.docker.internal:11434", allowInsecureUpstream: true, listen }, "c.json").upstream.protocol).toBe("http:");
  });
});

describe("the budget message the agent reads", () => {
  it("names the budget, the limit and what was spent", () => {
    expect(budgetMessage({ type: "budgetExceeded", budget: "maxCostUsd", limit: 0.5, spent: 0.51234 })).toBe(
      "perstack budget exceeded: the run spent its --max-cost budget ($0.5123 of $0.5); this run may make no more model calls",
    );
    expect(budgetMessage({ type: "budgetExceeded", budget: "maxCostUsd", limit: 0.0001, spent: 0.000123456 })).toContain("--max-cost budget ($0.00012 of $0.0001)");
    expect(budgetMessage({ type: "budgetExceeded", budget: "maxTokens", limit: 1000, spent: 1234 })).toBe(
      "perstack budget exceeded: the run spent its --max-tokens budget (1234 of 1000 tokens); this run may make no more model calls",
    );
  });
});
