import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../../src/errors.js";
import { EventPage, PRESET_TYPES, selectedTypes, selectsEvent, type Paging } from "../../../src/history/event-selection.js";
import { parseFilterExpression } from "../../../src/history/filter-expression.js";
import type { LoggedEvent } from "../../../src/history/logged-event.js";
import { parseStepFilter } from "../../../src/history/step-filter.js";

/** stepNumber null: a runtime event, which has none. */
const event = (i: number, type = "callTools", stepNumber: number | null = i): LoggedEvent => ({
  type, id: `e${i}`, timestamp: i, runId: "r", ...(stepNumber !== null ? { stepNumber } : {}),
});

/** Perstack's meaning, written the obvious way over a whole array: filter, slice, then neighbours of the page. */
function reference(all: LoggedEvent[], isMatch: (e: LoggedEvent) => boolean, paging: Paging) {
  const matched = all.filter(isMatch);
  const page = matched.slice(paging.offset, paging.take === 0 ? undefined : paging.offset + paging.take);
  const keep = new Set<number>();
  for (const m of page) {
    const at = all.indexOf(m);
    for (let i = Math.max(0, at - paging.context); i <= Math.min(all.length - 1, at + paging.context); i++) keep.add(i);
  }
  return { events: all.filter((_, i) => keep.has(i)), matched: matched.length, shownMatches: page.length };
}

function streamed(all: LoggedEvent[], isMatch: (e: LoggedEvent) => boolean, paging: Paging) {
  const page = new EventPage(isMatch, paging);
  for (const e of all) page.push(e);
  return { events: [...page.events], matched: page.matched, shownMatches: page.shownMatches };
}

describe("event selection", () => {
  it("--type and the presets add up to one set of types; unknown types are refused with a suggestion", () => {
    expect(selectedTypes(undefined, [])).toBeUndefined();
    expect([...selectedTypes("retry", [])!]).toEqual(["retry"]);
    expect([...selectedTypes("retry, callTools", [])!]).toEqual(["retry", "callTools"]);
    expect(new Set(selectedTypes(undefined, ["tools", "delegations"]))).toEqual(new Set([...PRESET_TYPES.tools, ...PRESET_TYPES.delegations]));
    expect(new Set(selectedTypes(undefined, ["errors"]))).toEqual(new Set(["stopRunByError", "retry", "sandboxWarning"]));
    expect(() => selectedTypes("callTool", [])).toThrow(InvalidOptionError);
    expect(() => selectedTypes("callTool", [])).toThrow(/^--type "callTool": not an event type; did you mean callTools\? the types are startRun, /);
    expect(() => selectedTypes("zzzzzzzzzz", [])).toThrow(/^--type "zzzzzzzzzz": not an event type; the types are /);
  });

  it("types, steps and the filter all have to hold", () => {
    const selector = { types: new Set(["callTools"]), steps: parseStepFilter("2-3"), filter: parseFilterExpression('.id != "e3"') };
    expect([1, 2, 3, 4].filter((i) => selectsEvent(selector, event(i)))).toEqual([2]);
    expect(selectsEvent(selector, event(2, "retry"))).toBe(false);
    expect(selectsEvent({ steps: parseStepFilter(">=0") }, event(2, "proxyAccess", null))).toBe(false);
    expect(selectsEvent({}, event(2, "proxyAccess", null))).toBe(true);
  });

  it("pages like Perstack: offset and take count matches; the counts are before and after paging", () => {
    const all = Array.from({ length: 50 }, (_, i) => event(i, i % 3 === 0 ? "retry" : "callTools"));
    const isRetry = (e: LoggedEvent) => e.type === "retry";
    const page = streamed(all, isRetry, { take: 5, offset: 2, context: 0 });
    expect(page.events.map((e) => e.id)).toEqual(["e6", "e9", "e12", "e15", "e18"]);
    expect(page.matched).toBe(17);
    expect(page.shownMatches).toBe(5);
    expect(streamed(all, isRetry, { take: 0, offset: 0, context: 0 }).events).toHaveLength(17);
    expect(streamed(all, isRetry, { take: 5, offset: 40, context: 0 })).toEqual({ events: [], matched: 17, shownMatches: 0 });
  });

  it("context adds the neighbours of each shown match in the whole stream, once each, in order", () => {
    const all = Array.from({ length: 20 }, (_, i) => event(i, [3, 5, 12, 19].includes(i) ? "retry" : "callTools"));
    const page = streamed(all, (e) => e.type === "retry", { take: 100, offset: 0, context: 2 });
    expect(page.events.map((e) => e.id)).toEqual(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e10", "e11", "e12", "e13", "e14", "e17", "e18", "e19"]);
    expect(page.shownMatches).toBe(4);
  });

  it("agrees with the whole-array meaning for every paging over a mixed stream", () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const all = Array.from({ length: 200 }, (_, i) => event(i, random() < 0.2 ? "retry" : "callTools"));
    const isRetry = (e: LoggedEvent) => e.type === "retry";
    for (const take of [0, 1, 3, 10]) {
      for (const offset of [0, 1, 5, 60]) {
        for (const context of [0, 1, 2, 7]) {
          const paging = { take, offset, context };
          expect(streamed(all, isRetry, paging), JSON.stringify(paging)).toEqual(reference(all, isRetry, paging));
        }
      }
    }
  });
});
