// What a command reads from and writes to, passed in so a command can be run (and tested) without the process's
// own streams and directory.
export interface CommandIo {
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout(text: string): void;
  stderr(text: string): void;
}

let guarded = false;

/** `perstack log | head` closes the pipe early: that ends the output, not in a stack trace. */
function quietOnClosedStdout(): void {
  if (guarded) return;
  guarded = true;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
    throw error;
  });
}

export function processIo(): CommandIo {
  quietOnClosedStdout();
  return {
    cwd: process.cwd(),
    env: process.env,
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
}

/**
 * Ends the process once stdout and stderr have taken everything written: for a command whose work is all done, so
 * that Docker's idle keep-alive connections do not hold the process open (about 0.2 s after `perstack run`).
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write("", () => resolve()))));
  process.exit(code);
}
