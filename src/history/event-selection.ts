// Which events `perstack log` shows, decided one event at a time as the job's files stream past: the filters, then
// paging (--offset, --take), then --context. Only the page and the events around it are ever held, so a job of any
// size is shown in constant memory (--take 0 holds every match, as asked).
import { InvalidOptionError } from "../errors.js";
import { PERSTACK_EVENT_TYPES } from "../model/event-schema.js";
import { matchesFilter, type FilterCondition } from "./filter-expression.js";
import type { LoggedEvent } from "./logged-event.js";
import { inStepRange, type StepRange } from "./step-filter.js";
import { closestKey } from "../text/did-you-mean.js";

/**
 * The presets. Perstack's own: errors are stopRunByError and retry, tools the calls and their results, delegations
 * the calls to delegates and the stops that wait for them. --errors adds sandboxWarning, this project's host-issued
 * event for what went wrong around the agent (refused output lines, rejected workspace changes, the output limit):
 * a user asking what went wrong needs those too.
 */
export const PRESET_TYPES = {
  errors: ["stopRunByError", "retry", "sandboxWarning"],
  tools: ["callTools", "resolveToolResults", "callInteractiveTool"],
  delegations: ["callDelegate", "stopRunByDelegate"],
} as const satisfies Record<string, readonly string[]>;

export type Preset = keyof typeof PRESET_TYPES;

export interface EventSelector {
  steps?: StepRange;
  /** --type and the presets together: an event of any of these types (undefined: every type). */
  types?: ReadonlySet<string>;
  filter?: FilterCondition;
}

export interface Paging {
  /** Matches to show; 0 shows every match. */
  take: number;
  /** Matches to skip first. */
  offset: number;
  /** Events shown before and after each match shown. */
  context: number;
}

export const DEFAULT_TAKE = 100;

/** --type (one type or a comma-separated list) and the presets, as the set of types to show. */
export function selectedTypes(typeOption: string | undefined, presets: readonly Preset[]): ReadonlySet<string> | undefined {
  const types = new Set<string>();
  for (const raw of typeOption?.split(",") ?? []) {
    const type = raw.trim();
    if (type === "") continue;
    if (!PERSTACK_EVENT_TYPES.includes(type)) {
      const guess = closestKey(type, PERSTACK_EVENT_TYPES);
      throw new InvalidOptionError(
        `--type ${JSON.stringify(type)}: not an event type; ${guess ? `did you mean ${guess}? ` : ""}the types are ${PERSTACK_EVENT_TYPES.join(", ")}`,
      );
    }
    types.add(type);
  }
  for (const preset of presets) for (const type of PRESET_TYPES[preset]) types.add(type);
  return types.size > 0 ? types : undefined;
}

export function selectsEvent(selector: EventSelector, event: LoggedEvent): boolean {
  if (selector.types && !selector.types.has(event.type)) return false;
  if (selector.steps && !inStepRange(selector.steps, event.stepNumber)) return false;
  if (selector.filter && !matchesFilter(selector.filter, event)) return false;
  return true;
}

/**
 * Collects the page as events stream past: `push` every event of the scope in order. Context events are the
 * neighbours in that stream (all events of the scope, not only matches), as in Perstack.
 */
export class EventPage {
  /** Matches before paging: Perstack's totalEventsBeforeLimit. */
  matched = 0;
  /** Matches on the page, context not counted: Perstack's matchedAfterPagination. */
  shownMatches = 0;
  private readonly out: LoggedEvent[] = [];
  /** The last `context` events that were not shown, for the context before the next match. */
  private readonly recent: Array<{ index: number; event: LoggedEvent }> = [];
  private index = -1;
  private lastShown = -1;
  private contextAfter = 0;

  constructor(
    private readonly select: (event: LoggedEvent) => boolean,
    private readonly paging: Paging,
  ) {}

  push(event: LoggedEvent): void {
    this.index += 1;
    const isMatch = this.select(event);
    let onPage = false;
    if (isMatch) {
      const position = this.matched;
      this.matched += 1;
      onPage = position >= this.paging.offset && (this.paging.take === 0 || position < this.paging.offset + this.paging.take);
    }
    if (onPage) {
      for (const held of this.recent) if (held.index > this.lastShown) this.show(held.index, held.event);
      this.recent.length = 0;
      this.show(this.index, event);
      this.shownMatches += 1;
      this.contextAfter = this.paging.context;
    } else if (this.contextAfter > 0) {
      this.contextAfter -= 1;
      this.show(this.index, event);
    } else if (this.paging.context > 0 && !this.pageComplete()) {
      this.recent.push({ index: this.index, event });
      if (this.recent.length > this.paging.context) this.recent.shift();
    }
  }

  /** The events to show, in stream order: the page's matches and their context. */
  get events(): readonly LoggedEvent[] {
    return this.out;
  }

  private pageComplete(): boolean {
    return this.paging.take !== 0 && this.shownMatches >= this.paging.take;
  }

  private show(index: number, event: LoggedEvent): void {
    this.out.push(event);
    this.lastShown = index;
  }
}
