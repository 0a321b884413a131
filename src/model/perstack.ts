// The Perstack data model as it is written to perstack/jobs: field names follow Perstack's so that its tools can
// read what this project writes. See shared/reference/perstack-format.md.

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  totalTokens: number;
  cachedInputTokens: number;
}

export const emptyUsage = (): Usage => ({
  inputTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  totalTokens: 0,
  cachedInputTokens: 0,
});

export function addUsage(a: Usage, b: Usage): Usage {
  return {
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    reasoningTokens: a.reasoningTokens + b.reasoningTokens,
    totalTokens: a.totalTokens + b.totalTokens,
    cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
  };
}

export type JobStatus =
  | "running"
  | "completed"
  | "stoppedByMaxSteps"
  | "stoppedByInteractiveTool"
  | "stoppedByError";

export interface Job {
  id: string;
  status: JobStatus;
  coordinatorExpertKey: string;
  totalSteps: number;
  maxSteps?: number;
  usage: Usage;
  startedAt: number;
  finishedAt?: number;
  runtime: string;
  /**
   * Not in Perstack's Job: the checkpoint the job last stopped at, which `--continue` and `--continue-job` start
   * from. Checkpoint ids alone do not order a job's history.
   */
  latestCheckpointId?: string;
  /** Not in Perstack's Job: the provider gateway's meter, when the run's provider goes through it. */
  metered?: JobMetered;
}

export type CheckpointStatus =
  | "init"
  | "proceeding"
  | "completed"
  | "stoppedByInteractiveTool"
  | "stoppedByDelegate"
  | "stoppedByExceededMaxSteps"
  | "stoppedByError";

export interface TextPart {
  type: "textPart";
  text: string;
}
export interface ThinkingPart {
  type: "thinkingPart";
  thinking: string;
  signature?: string;
}
export interface ToolCallPart {
  type: "toolCallPart";
  toolCallId: string;
  toolName: string;
  args: unknown;
}
/** Binary content of a tool result (an image, a PDF), base64, as Perstack's imageInlinePart/fileInlinePart. */
export interface ImageInlinePart {
  type: "imageInlinePart";
  encodedData: string;
  mimeType: string;
}
export interface FileInlinePart {
  type: "fileInlinePart";
  encodedData: string;
  mimeType: string;
}
export type ToolResultContent = TextPart | ImageInlinePart | FileInlinePart;

export interface ToolResultPart {
  type: "toolResultPart";
  toolCallId: string;
  toolName: string;
  contents: ToolResultContent[];
  isError?: boolean;
}

export type Message =
  | { type: "instructionMessage"; id: string; contents: TextPart[] }
  | { type: "userMessage"; id: string; contents: TextPart[] }
  | { type: "expertMessage"; id: string; contents: Array<TextPart | ThinkingPart | ToolCallPart> }
  | { type: "toolMessage"; id: string; contents: ToolResultPart[] };

export interface ExpertRef {
  key: string;
  name: string;
  version: string;
}

export interface CheckpointError {
  name: string;
  message: string;
  statusCode?: number;
  isRetryable: boolean;
}

export interface Checkpoint {
  id: string;
  jobId: string;
  runId: string;
  status: CheckpointStatus;
  stepNumber: number;
  messages: Message[];
  expert: ExpertRef;
  usage: Usage;
  metadata?: Record<string, unknown>;
  error?: CheckpointError;
  /** stoppedByDelegate: the child runs started for the delegate calls of this step. */
  delegateTo?: DelegateTo[];
  /** A delegated run: who called it, so its result can be handed back. */
  delegatedBy?: DelegatedBy;
  /** Tool calls of the last step still waiting for a result (a delegate's or an interactive answer). */
  pendingToolCalls?: ToolCall[];
  /** Results of the last step's calls that did finish while others are pending. */
  partialToolResults?: ToolResult[];
}

/**
 * Where a recorded event's messages are, instead of a copy of them: the first `count` messages of
 * checkpoints/<checkpointId>.json, a checkpoint file of the same job and the same run. Every checkpoint a run writes
 * holds a prefix of one growing conversation, so one reference per event keeps events.jsonl linear in the run's
 * length. (A step's checkpoint file in turn names lines of its run's messages.jsonl; storage/job-store.ts. Read back,
 * every checkpoint is whole, in Perstack's shape, and can be resumed from.)
 */
export interface MessagesRef {
  checkpointId: string;
  count: number;
}

/**
 * A checkpoint as a recorded event carries it: every field but `messages`, which `messagesRef` points to. A
 * checkpoint that is written as a file (an event's `checkpoint`, startRun's `initialCheckpoint`) points to itself;
 * continueToNextStep's `nextCheckpoint` (never a file) points to the event's `checkpoint`.
 */
export type CheckpointRef = Omit<Checkpoint, "messages"> & {
  messagesRef: MessagesRef;
  /**
   * Only on the built-in engine's stdout, never recorded: the messages the run's conversation gained since the
   * engine's previous checkpoint of this run, so the host can write this checkpoint's file whole.
   */
  appendMessages?: Message[];
};

export interface DelegateTo {
  expert: ExpertRef;
  toolCallId: string;
  toolName: string;
  /** The child run's id. */
  runId: string;
  query: string;
  /**
   * Not in Perstack: when the parent stopped because this child waits for an interactive answer, the child's
   * checkpoint, from which answering the job resumes it.
   */
  checkpointId?: string;
}

export interface DelegatedBy {
  expert: ExpertRef;
  toolCallId: string;
  toolName: string;
  /** The parent's stoppedByDelegate checkpoint. */
  checkpointId: string;
  runId: string;
}

export interface ToolCall {
  id: string;
  skillName: string;
  toolName: string;
  args: unknown;
  /** For a runtime's built-in tool: the same call in Perstack's base-skill terms (exec, writeTextFile, ...). */
  normalized?: { toolName: string; args: Record<string, unknown> };
}

export interface ToolResult {
  id: string;
  skillName: string;
  toolName: string;
  result: ToolResultContent[];
  isError?: boolean;
}

/** Fields every run event carries. */
export interface RunEventBase {
  id: string;
  expertKey: string;
  timestamp: number;
  jobId: string;
  runId: string;
  stepNumber: number;
}

/** Fields every runtime event carries. */
export interface RuntimeEventBase {
  id: string;
  timestamp: number;
  jobId: string;
  runId: string;
}

/**
 * Run events as this project records them (events.jsonl) and passes them around: checkpoints by reference
 * (CheckpointRef), and startGeneration's conversation as `messagesRef` plus the few messages after it
 * (`messagesAfterRef`, when the step's generation follows another without a checkpoint in between). Perstack's own
 * shape, with the messages in place, is ExpandedEvent (model/event-messages.ts expands one).
 */
export type RunEvent = RunEventBase &
  (
    | { type: "startRun"; initialCheckpoint: CheckpointRef; inputMessages: Message[] }
    | { type: "startGeneration"; messagesRef: MessagesRef; messagesAfterRef?: Message[] }
    | { type: "retry"; reason: string }
    | { type: "callTools"; newMessage: Message; toolCalls: ToolCall[]; usage: Usage }
    | { type: "callDelegate"; newMessage: Message; toolCalls: ToolCall[]; usage: Usage }
    | { type: "callInteractiveTool"; newMessage: Message; toolCall: ToolCall; usage: Usage }
    | { type: "attemptCompletion"; toolResult: ToolResult }
    | { type: "finishToolCall"; newMessages: Message[] }
    | { type: "resolveToolResults"; toolResults: ToolResult[] }
    | { type: "finishAllToolCalls"; newMessages: Message[] }
    | { type: "continueToNextStep"; checkpoint: CheckpointRef; nextCheckpoint: CheckpointRef }
    | { type: "completeRun"; checkpoint: CheckpointRef; text: string; usage: Usage }
    | { type: "stopRunByError"; checkpoint: CheckpointRef; error: CheckpointError }
    | { type: "stopRunByExceededMaxSteps"; checkpoint: CheckpointRef }
    | { type: "stopRunByDelegate"; checkpoint: CheckpointRef }
    | { type: "stopRunByInteractiveTool"; checkpoint: CheckpointRef }
    | { type: "startStreamingReasoning" }
    | { type: "streamReasoning"; delta: string }
    | { type: "completeStreamingReasoning"; text: string }
    | { type: "startStreamingRunResult" }
    | { type: "streamRunResult"; delta: string }
    | { type: "completeStreamingRunResult"; text: string }
  );

export type RuntimeEvent = RuntimeEventBase &
  (
    | { type: "initializeRuntime"; runtime: string; runtimeVersion?: string; model?: string; sessionId?: string }
    | { type: "skillStarting"; skillName: string }
    | { type: "skillConnected"; skillName: string }
    | { type: "skillStderr"; skillName: string; message: string }
    | { type: "skillDisconnected"; skillName: string }
    | { type: "dockerBuildProgress"; stage: string; service: string; message: string; progress?: number }
    | { type: "dockerContainerStatus"; status: string; service: string }
    | { type: "proxyAccess"; action: "allowed" | "blocked"; domain: string; port: number; reason?: string }
    /**
     * Not in Perstack's set: the host noticed something the user must know about the sandbox (a line on the agent's
     * stdout it refused, a policy file the agent changed, a workspace change it did not apply).
     */
    | { type: "sandboxWarning"; code: SandboxWarningCode; message: string; path?: string }
    /**
     * Not in Perstack's set: one model call as the provider gateway metered it (or refused it, with `refused`).
     * No bodies, no query strings, no secrets.
     */
    | {
        type: "providerUsage";
        requestId: string;
        method: string;
        path?: string;
        status: number;
        model?: string;
        usage?: MeteredUsage;
        latencyMs?: number;
        refused?: string;
      }
  );

/** Token counts of model calls as the provider gateway metered them; inputTokens includes cached and cache-write. */
export interface MeteredUsage extends Usage {
  cacheWriteTokens: number;
}

export const emptyMeteredUsage = (): MeteredUsage => ({ ...emptyUsage(), cacheWriteTokens: 0 });

export function addMeteredUsage(a: MeteredUsage, b: MeteredUsage): MeteredUsage {
  return { ...addUsage(a, b), cacheWriteTokens: a.cacheWriteTokens + b.cacheWriteTokens };
}

/** job.json's `metered`: what the provider gateway counted for the whole job, and what it cost. */
export interface JobMetered {
  requests: number;
  usage: MeteredUsage;
  /** null when a call's model has no price in the table: never a guess. */
  costUsd: number | null;
  pricing: { source: string; date: string; sha256: string };
}

export type SandboxWarningCode =
  | "invalid-output"
  | "forged-event"
  | "output-limit"
  | "policy-change-rejected"
  | "workspace-change-rejected"
  | "workspace-conflict"
  | "workspace-skipped"
  | "gateway-warning"
  /** The perstack process running the job died; another took the run over from the container's log. */
  | "run-taken-over";

/** Events only the host issues: never accepted from the agent's stream, whatever the runtime. */
export const HOST_ONLY_EVENT_TYPES: ReadonlySet<string> = new Set(["proxyAccess", "dockerBuildProgress", "dockerContainerStatus", "sandboxWarning", "providerUsage"]);

export type PerstackEvent = RunEvent | RuntimeEvent;
export type PerstackEventType = PerstackEvent["type"];

type ExpandRunEvent<E> = E extends { type: "startGeneration" }
  ? Omit<E, "messagesRef" | "messagesAfterRef"> & { messages: Message[] }
  : { [K in keyof E]: E[K] extends CheckpointRef ? Checkpoint : E[K] };

/** A run event in Perstack's own shape: whole checkpoints, startGeneration with its `messages`. */
export type ExpandedRunEvent = ExpandRunEvent<RunEvent>;
export type ExpandedEvent = ExpandedRunEvent | RuntimeEvent;
