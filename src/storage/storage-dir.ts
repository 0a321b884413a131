// Where jobs are read from: ./perstack, or $PERSTACK_STORAGE_PATH as Perstack's own CLI honours it (a relative
// value is taken from the current directory).
import { join, resolve } from "node:path";

export function perstackStorageDir(cwd: string, env: NodeJS.ProcessEnv): string {
  const configured = env.PERSTACK_STORAGE_PATH?.trim();
  return configured ? resolve(cwd, configured) : join(cwd, "perstack");
}
