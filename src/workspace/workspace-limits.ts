// Bounds on what one workspace copy may hold, in either direction. The archive coming back from the sandbox is
// shaped by the agent, so without them a run could fill the host's disk or memory through copy-back.
import { WorkspaceCopyError } from "../errors.js";

export interface WorkspaceLimits {
  /** Entries (files, directories, symlinks, and anything skipped) not counting the workspace root. */
  maxEntries: number;
  /** Content bytes of all files together; a hardlink in the archive counts as the copy it becomes. */
  maxTotalBytes: number;
  maxFileBytes: number;
}

export type WorkspaceLimitName = keyof WorkspaceLimits;

export const DEFAULT_WORKSPACE_LIMITS: WorkspaceLimits = {
  maxEntries: 200_000,
  maxTotalBytes: 8 * 1024 ** 3,
  maxFileBytes: 2 * 1024 ** 3,
};

export interface ExceededLimit {
  limit: WorkspaceLimitName;
  max: number;
  /** Workspace-relative path of the entry that crossed the limit, when one entry did. */
  path?: string;
}

export function resolveLimits(limits: Partial<WorkspaceLimits> | undefined): WorkspaceLimits {
  const resolved = { ...DEFAULT_WORKSPACE_LIMITS, ...limits };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new WorkspaceCopyError(`workspace copy limit ${name} must be a non-negative whole number, got ${String(value)}; fix the limit's value`);
    }
  }
  return resolved;
}

/** "more than 10 entries (maxEntries)": the part of an error message that names what was too big. */
export function describeExceededLimit(exceeded: ExceededLimit): string {
  const where = exceeded.path === undefined ? "" : ` at ${exceeded.path}`;
  switch (exceeded.limit) {
    case "maxEntries":
      return `more than ${exceeded.max} entries (limit maxEntries)`;
    case "maxTotalBytes":
      return `more than ${exceeded.max} bytes of file content${where} (limit maxTotalBytes)`;
    case "maxFileBytes":
      return `a file larger than ${exceeded.max} bytes${where} (limit maxFileBytes)`;
  }
}

/**
 * Counts entries and bytes as they are met. Bytes are counted as they are actually read, so a header that
 * understates its size cannot slip content past the limits; declared sizes are also checked up front so an
 * oversized entry fails before its bytes are read.
 */
export class LimitTally {
  private entries = 0;
  private totalBytes = 0;
  private fileBytes = 0;
  private currentPath: string | undefined;

  constructor(private readonly limits: WorkspaceLimits) {}

  /** Counts one entry and starts counting the bytes of its content. */
  entry(path: string): ExceededLimit | undefined {
    this.entries += 1;
    this.fileBytes = 0;
    this.currentPath = path;
    if (this.entries > this.limits.maxEntries) return { limit: "maxEntries", max: this.limits.maxEntries, path };
    return undefined;
  }

  /** Checks a size a header declares for the current entry, without counting it. */
  declared(size: number): ExceededLimit | undefined {
    return this.check(this.fileBytes + size, this.totalBytes + size);
  }

  /** Counts bytes read for the current entry. */
  read(bytes: number): ExceededLimit | undefined {
    this.fileBytes += bytes;
    this.totalBytes += bytes;
    return this.check(this.fileBytes, this.totalBytes);
  }

  private check(fileBytes: number, totalBytes: number): ExceededLimit | undefined {
    const path = this.currentPath;
    if (fileBytes > this.limits.maxFileBytes) return { limit: "maxFileBytes", max: this.limits.maxFileBytes, path };
    if (totalBytes > this.limits.maxTotalBytes) return { limit: "maxTotalBytes", max: this.limits.maxTotalBytes, path };
    return undefined;
  }
}

/** Thrown inside packing and staging when a limit is passed; each turns it into its own WorkspaceCopyError. */
export class LimitExceededError extends Error {
  constructor(readonly exceeded: ExceededLimit) {
    super(describeExceededLimit(exceeded));
  }
}
