import { describe, expect, it } from "vitest";
import { ReportLinks } from "../../../src/server/report-links.js";

describe("report links", () => {
  const parse = (link: string) => {
    const url = new URL(link, "http://x");
    const [, , tenant, id] = url.pathname.split("/");
    return { tenant: decodeURIComponent(tenant!), id: decodeURIComponent(id!), expires: url.searchParams.get("expires")!, signature: url.searchParams.get("signature")! };
  };

  it("opens the one report it names, until it expires", () => {
    let now = 1_000_000;
    const links = new ReportLinks(() => now);
    const { tenant, id, expires, signature } = parse(links.link("alpha", "cmp1"));
    expect(links.valid(tenant, id, expires, signature)).toBe(true);
    expect(links.valid("beta", id, expires, signature)).toBe(false);
    expect(links.valid(tenant, "cmp2", expires, signature)).toBe(false);
    expect(links.valid(tenant, id, String(Number(expires) + 1), signature)).toBe(false);
    expect(links.valid(tenant, id, expires, `${signature}x`)).toBe(false);
    expect(links.valid(tenant, id, "not-a-number", signature)).toBe(false);
    now += 5 * 60_000 + 1;
    expect(links.valid(tenant, id, expires, signature)).toBe(false);
  });

  it("is signed with a key of its own: another process's links do not open", () => {
    const { tenant, id, expires, signature } = parse(new ReportLinks().link("alpha", "cmp1"));
    expect(new ReportLinks().valid(tenant, id, expires, signature)).toBe(false);
  });
});
