// Every change copy-back makes to the host is recorded with its inverse, so a failure part-way can put the
// workspace back exactly as it was: originals are moved aside (never deleted) until the whole apply succeeded.
import { WorkspaceCopyError } from "../errors.js";

/** Rollback itself failed: some originals are still in the backup directory and must be restored by hand. */
export class IncompleteRollbackError extends WorkspaceCopyError {
  constructor(
    message: string,
    /** The directory holding the originals that could not be put back. */
    readonly backupDir: string,
  ) {
    super(message);
  }
}

interface UndoStep {
  description: string;
  undo: () => Promise<void>;
}

export interface RollbackFailure {
  description: string;
  error: unknown;
}

export class ApplyJournal {
  private readonly steps: UndoStep[] = [];

  /** Runs one step; its inverse is recorded only once the step succeeded, so rollback never undoes a no-op. */
  async record(description: string, step: () => Promise<void>, undo: () => Promise<void>): Promise<void> {
    await step();
    this.steps.push({ description, undo });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Undoes every recorded step, newest first. Keeps going past a failed undo so as much as possible is restored. */
  async rollback(): Promise<RollbackFailure[]> {
    const failures: RollbackFailure[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop() as UndoStep;
      try {
        await step.undo();
      } catch (error) {
        failures.push({ description: step.description, error });
      }
    }
    return failures;
  }

  /** After success the originals are no longer needed; forgetting the steps makes a later rollback a no-op. */
  commit(): void {
    this.steps.length = 0;
  }
}
