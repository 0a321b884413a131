// isSafeId is SAFE_ID, checked faster (model/ids.ts): the two must agree on every id, hostile ones included.
import { describe, expect, it } from "vitest";
import { isSafeId, newId, SAFE_ID } from "../../../src/model/ids.js";

describe("isSafeId", () => {
  it("agrees with SAFE_ID", () => {
    const cases = [
      "", "a", "Z9", "9", "-a", "_a", "a-b_c", "a.b", "a b", "a/b", "a\n", "\na", "é", "aé", "a\u0000", "..", "a".repeat(128), "a".repeat(129),
      `a${"-".repeat(127)}`, `a${"_".repeat(128)}`, newId(), "mx2lgungf428102bab9e", "toolu_fake_8_f1a505b394e5", "Ａ",
    ];
    for (const value of cases) expect(isSafeId(value), JSON.stringify(value)).toBe(SAFE_ID.test(value));
    for (const value of [undefined, null, 7, {}, ["a"]]) expect(isSafeId(value)).toBe(false);
  });
});
