// Where the engine's Perstack events go: one JSON object per line on stdout, which the host's collector reads
// like any other runtime's stream. Stamps the fields every event carries (id, timestamp, jobId, runId).
import { newId } from "../model/ids.js";
import type { PerstackEvent, RunEvent, RuntimeEvent, RuntimeEventBase } from "../model/perstack.js";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type RunEventBody = DistributiveOmit<RunEvent, "id" | "expertKey" | "timestamp" | "jobId" | "runId" | "stepNumber">;
export type RuntimeEventBody = DistributiveOmit<RuntimeEvent, keyof RuntimeEventBase>;

/** Sortable by creation time, like the host's ids. */
export { newId };

export class EventSink {
  constructor(
    readonly jobId: string,
    private readonly write: (line: string) => void,
    readonly now: () => number = Date.now,
  ) {}

  runEvent(runId: string, expertKey: string, stepNumber: number, body: RunEventBody): void {
    this.emit({ ...body, id: newId(), expertKey, timestamp: this.now(), jobId: this.jobId, runId, stepNumber } as RunEvent);
  }

  runtimeEvent(runId: string, body: RuntimeEventBody): void {
    this.emit({ ...body, ...this.runtimeBase(runId) } as RuntimeEvent);
  }

  runtimeBase(runId: string): RuntimeEventBase {
    return { id: newId(), timestamp: this.now(), jobId: this.jobId, runId };
  }

  private emit(event: PerstackEvent): void {
    this.write(`${JSON.stringify(event)}\n`);
  }
}
