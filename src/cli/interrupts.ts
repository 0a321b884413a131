// Ctrl-C for commands that run sandboxes (`run`, `compare`): the first signal stops the work and removes what it
// created, the second removes it at once without waiting (and skips copying a workspace back), the third quits and
// says what is left and how to remove it.
import { removalCommands, type SandboxResources } from "../sandbox/sandbox-resources.js";

export interface Interrupts {
  signal: AbortSignal;
  hurry: AbortSignal;
  dispose(): void;
}

/** `what` names the work in messages ("the run", "the comparison"). */
export function handleInterrupts(resources: SandboxResources, what: string, exitCode: number): Interrupts {
  const controller = new AbortController();
  const hurry = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      process.stderr.write(`\n${signal}: stopping ${what} and removing its containers… (again to skip copying the workspace back)\n`);
      controller.abort();
    } else if (signals === 2) {
      const left = resources.remaining().map((r) => r.name);
      process.stderr.write(`${signal}: removing ${left.length > 0 ? left.join(", ") : `what ${what} created`} now… (again to quit and leave it)\n`);
      hurry.abort();
      void resources.removeAll();
    } else {
      const left = resources.remaining();
      process.stderr.write(
        left.length === 0
          ? `${signal}: nothing of ${what} is left\n`
          : `${signal}: quitting; left behind: ${left.map((r) => `${r.kind} ${r.name}`).join(", ")}; remove with: ${removalCommands(left).join(" && ")}\n`,
      );
      process.exit(exitCode);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    hurry: hurry.signal,
    dispose() {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}
