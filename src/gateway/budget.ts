// The run's running totals against its budgets. A model without a price adds its tokens but no cost: max-cost
// cannot see what it cannot price, and the gateway warns about that rather than guess.
import type { BudgetExceededRecord, MeteredUsage } from "./types.js";

export interface Budgets {
  maxCostUsd?: number;
  maxTokens?: number;
}

export class UsageLedger {
  tokens = 0;
  costUsd = 0;
  private spentBudget: BudgetExceededRecord | undefined;

  constructor(private readonly budgets: Budgets = {}) {}

  /** Adds one response's usage; returns the budget it used up, only on the call that first reaches one. */
  add(usage: MeteredUsage, costUsd: number | null): BudgetExceededRecord | undefined {
    this.tokens += usage.totalTokens;
    if (costUsd !== null) this.costUsd += costUsd;
    if (this.spentBudget) return undefined;
    const { maxCostUsd, maxTokens } = this.budgets;
    if (maxCostUsd !== undefined && this.costUsd >= maxCostUsd) {
      this.spentBudget = { type: "budgetExceeded", budget: "maxCostUsd", limit: maxCostUsd, spent: this.costUsd };
    } else if (maxTokens !== undefined && this.tokens >= maxTokens) {
      this.spentBudget = { type: "budgetExceeded", budget: "maxTokens", limit: maxTokens, spent: this.tokens };
    }
    return this.spentBudget;
  }

  /** The budget that is spent, if any: from then on no request is forwarded. */
  exceeded(): BudgetExceededRecord | undefined {
    return this.spentBudget;
  }
}

// Budgets can be tiny (tests, trial runs): keep two significant digits below a cent instead of rounding to $0.
const usd = (value: number): string => `$${value > 0 && value < 0.01 ? Number(value.toPrecision(2)) : Number(value.toFixed(4))}`;

/** What the agent reads in the refusal: it must say which budget, so the model (and the user) can tell. */
/** How a refusal for a spent budget begins: the built-in engine names such a stop BudgetExceeded (retry-policy.ts). */
export const BUDGET_EXCEEDED_PREFIX = "perstack budget exceeded: ";

export function budgetMessage(spent: BudgetExceededRecord): string {
  const detail =
    spent.budget === "maxCostUsd"
      ? `the run spent its --max-cost budget (${usd(spent.spent)} of ${usd(spent.limit)})`
      : `the run spent its --max-tokens budget (${spent.spent} of ${spent.limit} tokens)`;
  return `${BUDGET_EXCEEDED_PREFIX}${detail}; this run may make no more model calls`;
}
