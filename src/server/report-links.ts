// Links to a comparison's report.html that a browser frame can open. A frame's navigation cannot carry the bearer
// token, and a report written into a blob: frame would run under the console's own CSP (which refuses the report's
// inline styles). So an authenticated call gets a short-lived link, signed with a key this process made, that names
// the tenant and the comparison; the link alone opens that one report until it expires, and nothing else.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const TTL_MS = 5 * 60_000;

export class ReportLinks {
  private readonly key = randomBytes(32);

  constructor(private readonly now: () => number = Date.now) {}

  /** The path (with query) that opens `id`'s report for `tenant` for the next five minutes. */
  link(tenant: string, id: string): string {
    const expires = this.now() + TTL_MS;
    return `/reports/${encodeURIComponent(tenant)}/${encodeURIComponent(id)}?expires=${expires}&signature=${this.sign(tenant, id, expires)}`;
  }

  /** Whether a link's parts are one this process signed and it has not expired. */
  valid(tenant: string, id: string, expires: string, signature: string): boolean {
    if (!/^[0-9]{1,15}$/.test(expires) || Number(expires) < this.now()) return false;
    const expected = Buffer.from(this.sign(tenant, id, Number(expires)));
    const given = Buffer.from(signature);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private sign(tenant: string, id: string, expires: number): string {
    // Lengths first, so that no two (tenant, id) pairs make the same signed text.
    return createHmac("sha256", this.key).update(`${tenant.length}:${tenant}|${id.length}:${id}|${expires}`).digest("base64url");
  }
}
