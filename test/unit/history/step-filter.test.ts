import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../../src/errors.js";
import { inStepRange, parseStepFilter } from "../../../src/history/step-filter.js";

const steps = (text: string) => [0, 1, 4, 5, 6, 10, 11].filter((n) => inStepRange(parseStepFilter(text), n));

describe("--step", () => {
  it.each([
    ["5", [5]],
    [">5", [6, 10, 11]],
    [">=5", [5, 6, 10, 11]],
    ["<5", [0, 1, 4]],
    ["<=5", [0, 1, 4, 5]],
    ["1-10", [1, 4, 5, 6, 10]],
    [" 5 - 6 ", [5, 6]],
    ["5-5", [5]],
  ])("%s selects %j", (text, expected) => {
    expect(steps(text)).toEqual(expected);
  });

  it("events without a step are in no range", () => {
    expect(inStepRange(parseStepFilter(">=0"), undefined)).toBe(false);
  });

  it.each([["abc"], [""], ["5-"], ["-5"], ["=5"], ["1.5"], ["5,6"], [">>5"]])("refuses %j with the forms it takes", (text) => {
    expect(() => parseStepFilter(text)).toThrow(InvalidOptionError);
    expect(() => parseStepFilter(text)).toThrow(`--step ${JSON.stringify(text)}: give a step (5), a bound (>5, >=5, <5, <=5) or a range (1-10)`);
  });

  it("a backwards range says how to write it", () => {
    expect(() => parseStepFilter("10-1")).toThrow('--step "10-1": the range runs backwards; write 1-10');
  });
});
