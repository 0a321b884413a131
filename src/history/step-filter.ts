// `perstack log --step`: Perstack's forms 5, >5, >=5, <5, <=5 and 1-10, as one inclusive range.
import { InvalidOptionError } from "../errors.js";

export interface StepRange {
  min: number;
  max: number;
}

const FORMS = "give a step (5), a bound (>5, >=5, <5, <=5) or a range (1-10)";

export function parseStepFilter(text: string): StepRange {
  const trimmed = text.trim();
  const range = /^(\d+)\s*-\s*(\d+)$/.exec(trimmed);
  if (range) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    if (min > max) throw new InvalidOptionError(`--step ${JSON.stringify(text)}: the range runs backwards; write ${max}-${min}`);
    return { min, max };
  }
  const bound = /^(>=|<=|>|<)?\s*(\d+)$/.exec(trimmed);
  if (!bound) throw new InvalidOptionError(`--step ${JSON.stringify(text)}: ${FORMS}`);
  const n = Number(bound[2]);
  switch (bound[1]) {
    case ">":
      return { min: n + 1, max: Number.POSITIVE_INFINITY };
    case ">=":
      return { min: n, max: Number.POSITIVE_INFINITY };
    case "<":
      return { min: Number.NEGATIVE_INFINITY, max: n - 1 };
    case "<=":
      return { min: Number.NEGATIVE_INFINITY, max: n };
    default:
      return { min: n, max: n };
  }
}

/** Events without a step (runtime events: proxy, build, container) are never in a step range. */
export function inStepRange(range: StepRange, stepNumber: number | undefined): boolean {
  return stepNumber !== undefined && stepNumber >= range.min && stepNumber <= range.max;
}
