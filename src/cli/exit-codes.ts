// Exit codes of `perstack run` (also in its --help), shared by the modules that carry out the commands.
export const RUN_EXIT = { completed: 0, failed: 1, badInput: 2, waitingForInput: 3, interrupted: 130 } as const;
