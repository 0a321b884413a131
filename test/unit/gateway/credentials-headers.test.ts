// [provider.setting] headers travel to the gateway (PERSTACK_GATEWAY_HEADERS), which adds them to every upstream
// request; the real credentials win a clash, and a malformed value stops the gateway with one line.
import { describe, expect, it } from "vitest";
import { withProviderHeaders } from "../../../src/gateway/credentials.js";
import { staticHeaderAuth } from "../../../src/gateway/upstream-auth.js";

const request = { method: "POST", url: new URL("https://api.example.com/v1/messages"), headers: {}, body: Buffer.alloc(0) };

describe("provider headers in the gateway", () => {
  it("adds them to the upstream request, lowercased, and lets the credentials win", async () => {
    const auth = withProviderHeaders(staticHeaderAuth({ "x-api-key": "real" }), {
      PERSTACK_GATEWAY_HEADERS: JSON.stringify({ "X-Team": "research", "x-api-key": "from-headers" }),
    });
    expect(await auth.headersFor(request)).toEqual({ "x-team": "research", "x-api-key": "real" });
  });

  it("changes nothing without the variable", async () => {
    const auth = withProviderHeaders(staticHeaderAuth({ authorization: "Bearer real" }), {});
    expect(await auth.headersFor(request)).toEqual({ authorization: "Bearer real" });
  });

  it("refuses malformed values with a line naming the variable", () => {
    const base = staticHeaderAuth({});
    expect(() => withProviderHeaders(base, { PERSTACK_GATEWAY_HEADERS: "{nope" })).toThrow(/PERSTACK_GATEWAY_HEADERS is not JSON/);
    expect(() => withProviderHeaders(base, { PERSTACK_GATEWAY_HEADERS: "[1]" })).toThrow(/must be a JSON object/);
    expect(() => withProviderHeaders(base, { PERSTACK_GATEWAY_HEADERS: JSON.stringify({ "x-a": "one\r\ntwo" }) })).toThrow(/"x-a" is not a header name with a one-line string value/);
    expect(() => withProviderHeaders(base, { PERSTACK_GATEWAY_HEADERS: JSON.stringify({ "bad name": "v" }) })).toThrow(/"bad name"/);
  });
});
