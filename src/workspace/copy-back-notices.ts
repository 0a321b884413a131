// What the user must hear about a copy-back: each agent change that was not applied (refused by policy, or
// conflicting with the user's own change) and each entry that was not copied, with where the agent's version is
// kept. One line each, for the run's sandboxWarning events; shared by local copy-mode runs and `--server` runs.
import { relative } from "node:path";
import type { SandboxWarningCode } from "../model/perstack.js";
import type { CopyBackResult } from "./copy-back.js";

export interface CopyBackNotice {
  code: Extract<SandboxWarningCode, "policy-change-rejected" | "workspace-change-rejected" | "workspace-conflict" | "workspace-skipped">;
  path: string;
  message: string;
}

/** `protectedFiles`: the policy files (their refusals are policy-change-rejected); `cwd`: kept paths are shown relative to it when shorter. */
export function copyBackNotices(result: Pick<CopyBackResult, "rejected" | "conflicts" | "skipped">, protectedFiles: readonly string[], cwd: string): CopyBackNotice[] {
  const shown = (path: string) => relativeOrAbsolute(cwd, path);
  const notices: CopyBackNotice[] = [];
  for (const r of result.rejected) {
    notices.push({
      code: protectedFiles.includes(r.path) ? "policy-change-rejected" : "workspace-change-rejected",
      path: r.path,
      message: `the agent ${r.change} ${r.path}; not applied (${r.reason})${r.keptAt ? `; its version is kept in ${shown(r.keptAt)}` : ""}`,
    });
  }
  for (const c of result.conflicts) {
    notices.push({
      code: "workspace-conflict",
      path: c.path,
      message: `${c.path} changed in the workspace during the run; the agent's change was not applied (${c.reason})${c.keptAt ? `; its version is kept in ${shown(c.keptAt)}` : ""}`,
    });
  }
  for (const s of result.skipped) notices.push({ code: "workspace-skipped", path: s.path, message: `${s.path} was not copied back: ${s.reason}` });
  return notices;
}

export function relativeOrAbsolute(cwd: string, path: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith("..") ? rel : path;
}
