import { describe, expect, it } from "vitest";
import { InvalidOptionError } from "../../../src/errors.js";
import { matchesFilter, parseFilterExpression } from "../../../src/history/filter-expression.js";

const event = {
  type: "callTools",
  stepNumber: 3,
  expertKey: "lead",
  done: false,
  toolCalls: [
    { toolName: "readTextFile", args: { path: "a.txt" }, tags: ["x", "y"] },
    { toolName: "exec", args: { command: "ls", timeout: 500 } },
  ],
  usage: { inputTokens: 120 },
  note: "two words",
};
const matches = (expression: string) => matchesFilter(parseFilterExpression(expression), event);

describe("--filter expressions", () => {
  it("parses Perstack's grammar into a path, an operator and a typed value", () => {
    expect(parseFilterExpression('.toolCalls[].toolName == "readTextFile"')).toEqual({
      path: ".toolCalls[].toolName",
      segments: [{ kind: "field", name: "toolCalls" }, { kind: "each" }, { kind: "field", name: "toolName" }],
      operator: "==",
      value: "readTextFile",
    });
    expect(parseFilterExpression(".a==1").value).toBe(1);
    expect(parseFilterExpression(".a == -2.5").value).toBe(-2.5);
    expect(parseFilterExpression(".a == true").value).toBe(true);
    expect(parseFilterExpression(".a != false").value).toBe(false);
    expect(parseFilterExpression(".a == 'single quoted'").value).toBe("single quoted");
    expect(parseFilterExpression('.a == "42"').value).toBe("42");
    expect(parseFilterExpression(".a == bare").value).toBe("bare");
    expect(parseFilterExpression(".a == two words").value).toBe("two words");
    expect(parseFilterExpression(".list[2].x <= 7").segments).toEqual([{ kind: "field", name: "list" }, { kind: "index", index: 2 }, { kind: "field", name: "x" }]);
  });

  it("== and != compare strictly; text, numbers and booleans", () => {
    expect(matches('.type == "callTools"')).toBe(true);
    expect(matches(".type == callTools")).toBe(true);
    expect(matches('.type != "callTools"')).toBe(false);
    expect(matches(".stepNumber == 3")).toBe(true);
    expect(matches('.stepNumber == "3"')).toBe(false);
    expect(matches(".done == false")).toBe(true);
    expect(matches(".note == two words")).toBe(true);
  });

  it("ordering operators compare numbers only", () => {
    expect(matches(".stepNumber > 2")).toBe(true);
    expect(matches(".stepNumber >= 3")).toBe(true);
    expect(matches(".stepNumber < 3")).toBe(false);
    expect(matches(".stepNumber <= 3")).toBe(true);
    expect(matches(".usage.inputTokens > 100")).toBe(true);
    expect(matches(".expertKey > 1")).toBe(false);
  });

  it("[] is any element; an array at the end of the path is any of its elements; [n] is one element", () => {
    expect(matches('.toolCalls[].toolName == "exec"')).toBe(true);
    expect(matches('.toolCalls[].toolName == "writeTextFile"')).toBe(false);
    expect(matches(".toolCalls[].args.timeout >= 500")).toBe(true);
    expect(matches('.toolCalls[].tags == "y"')).toBe(true);
    expect(matches('.toolCalls[0].toolName == "readTextFile"')).toBe(true);
    expect(matches('.toolCalls[1].toolName == "readTextFile"')).toBe(false);
    expect(matches('.toolCalls[5].toolName == "readTextFile"')).toBe(false);
  });

  it("a path that leads nowhere never matches, not even with !=", () => {
    expect(matches('.missing == "x"')).toBe(false);
    expect(matches('.missing != "x"')).toBe(false);
    expect(matches('.note[].x == "x"')).toBe(false);
    expect(matches('.stepNumber.x != "x"')).toBe(false);
    expect(matches('.toString != "x"')).toBe(false);
  });

  it.each([
    ["toolName == x", 'start with "." and a field name, then an operator and a value, e.g. .toolCalls[].toolName == "readTextFile"'],
    [".toolName", 'an operator (== != > >= < <=) and a value must follow .toolName, e.g. .toolCalls[].toolName == "readTextFile"'],
    [".toolName ==", 'the value after == is missing, e.g. .toolName == "text"'],
    [".stepNumber >", "the value after > is missing, e.g. .stepNumber > 3"],
    [".toolName = x", "compare with == (a single = is not an operator)"],
    ['.toolName == "open', "the quoted value is not closed: end it with \""],
    [".a..b == 1", '".a..b" is not a field path: write names joined by "." with [] for any element of an array, e.g. .toolCalls[].toolName == "readTextFile"'],
    [".[] == 1", '".[]" is not a field path'],
    [". == 1", '"." is not a field path'],
    [".a[x] == 1", '".a[x]" is not a field path'],
    [".1a == 1", '".1a" is not a field path'],
    [".a > text", "> compares numbers; give a number after it, or use == or != for text"],
    [".a <= true", "<= compares numbers"],
  ])("refuses %j in one line naming it", (expression, message) => {
    expect(() => parseFilterExpression(expression)).toThrow(InvalidOptionError);
    expect(() => parseFilterExpression(expression)).toThrow(`--filter ${JSON.stringify(expression)}: ${message}`);
  });
});
