// Submissions named by an Idempotency-Key (server/submission-keys.ts), in a real server database: a key makes one run
// at most, a cancelled key refuses its submission whenever it comes, and a refused submission frees its key.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openServerDb } from "../../../src/server/server-db.js";
import { SubmissionKeys } from "../../../src/server/submission-keys.js";

const dir = mkdtempSync(join(tmpdir(), "perstack-keys-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("submission keys", () => {
  const keys = new SubmissionKeys(openServerDb(dir));

  it("a key is taken once: sent again while taken it is pending, once it made a run it names that run", () => {
    expect(keys.begin("alpha", "key-aaaaaaaaaaaaaaaa")).toEqual({ state: "new" });
    expect(keys.begin("alpha", "key-aaaaaaaaaaaaaaaa")).toEqual({ state: "pending" });
    // Another tenant's key of the same text is another key.
    expect(keys.begin("beta", "key-aaaaaaaaaaaaaaaa")).toEqual({ state: "new" });
    keys.made("alpha", "key-aaaaaaaaaaaaaaaa", 7);
    expect(keys.begin("alpha", "key-aaaaaaaaaaaaaaaa")).toEqual({ state: "made", seq: 7 });
    // Cancelled after it made its run: the caller cancels that run; the key still names it.
    expect(keys.cancel("alpha", "key-aaaaaaaaaaaaaaaa")).toEqual({ seq: 7 });
    expect(keys.begin("alpha", "key-aaaaaaaaaaaaaaaa")).toEqual({ state: "made", seq: 7 });
  });

  it("cancelled while taken or before it came: refused, and the key stays refused", () => {
    expect(keys.begin("alpha", "key-bbbbbbbbbbbbbbbb")).toEqual({ state: "new" });
    expect(keys.cancel("alpha", "key-bbbbbbbbbbbbbbbb")).toEqual({});
    expect(keys.cancelled("alpha", "key-bbbbbbbbbbbbbbbb")).toBe(true);
    // The submission that was being taken is refused and releases nothing: the key stays cancelled.
    keys.release("alpha", "key-bbbbbbbbbbbbbbbb");
    expect(keys.begin("alpha", "key-bbbbbbbbbbbbbbbb")).toEqual({ state: "cancelled" });
    expect(keys.cancel("alpha", "key-cccccccccccccccc")).toEqual({});
    expect(keys.begin("alpha", "key-cccccccccccccccc")).toEqual({ state: "cancelled" });
  });

  it("a submission refused for bad input frees its key for the corrected one", () => {
    expect(keys.begin("alpha", "key-dddddddddddddddd")).toEqual({ state: "new" });
    keys.release("alpha", "key-dddddddddddddddd");
    expect(keys.begin("alpha", "key-dddddddddddddddd")).toEqual({ state: "new" });
  });
});
