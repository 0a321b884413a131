// Job, run and checkpoint ids name directories and files under perstack/jobs, and some of them come from the
// agent's container (the built-in engine issues checkpoint and delegated run ids). So every id that names
// anything is one of these: letters, digits, '-' and '_', starting with a letter or digit, at most 128 long.
// Perstack's own ids (cuid2) and this project's (base-36 time + hex) fit.
import { z } from "zod";

export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function isSafeId(value: unknown): value is string {
  return typeof value === "string" && SAFE_ID.test(value);
}

export const safeIdSchema = z.string().regex(SAFE_ID, { error: "must be an id of letters, digits, '-' and '_'" });
