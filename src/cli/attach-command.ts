// `perstack attach <jobId>`: takes over a job whose perstack process died mid-run (job/recover-run.ts). If its agent
// still runs, the live view and the collector follow it from where collection stopped; once it exits, or if it had
// already, the job gets its real outcome and the sandbox is removed. Ctrl-C detaches and leaves the agent running.
import { InvalidOptionError } from "../errors.js";
import { isStale, lockHolder } from "../job/job-lock.js";
import { perstackDirOf } from "../job/prepare-run.js";
import { recoverRun } from "../job/recover-run.js";
import { connectDocker } from "../sandbox/docker-client.js";
import { jobsDir, readJob } from "../storage/job-reader.js";
import { join } from "node:path";
import { RUN_EXIT as EXIT } from "./exit-codes.js";
import { formatEvent } from "./live-view.js";
import { terminalSafe } from "./terminal-text.js";

export async function attachCommand(jobId: string, options: { json?: boolean }): Promise<number> {
  const perstackDir = perstackDirOf(process.cwd(), process.env);
  // Bad input is found before Docker is touched: a job that is not there, or not one to attach to.
  const job = readJob(perstackDir, jobId);
  const holder = lockHolder(join(jobsDir(perstackDir), jobId));
  if (job.status !== "running") throw new InvalidOptionError(`job ${jobId} is not running (it ended ${job.status}); see it with: perstack log ${jobId}`);
  if (holder && !isStale(holder)) {
    throw new InvalidOptionError(`job ${jobId} is being run by perstack process ${holder.pid} on ${holder.host}; attach takes over a job whose perstack process has stopped`);
  }
  const docker = await connectDocker();
  const say = (stream: NodeJS.WriteStream, text: string) => stream.write(`${terminalSafe(text)}\n`);
  const detach = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      say(process.stderr, `\n${signal}: detaching; the agent keeps running (again to quit at once)`);
      detach.abort();
    } else {
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    if (!options.json) say(process.stderr, `attaching to job ${jobId}: collecting what its agent printed since perstack process ${holder?.pid ?? "?"} stopped…`);
    const recovery = await recoverRun(docker, perstackDir, { jobId, pid: holder?.pid ?? 0, ...(holder?.runId !== undefined ? { runId: holder.runId } : {}) }, {
      follow: true,
      detach: detach.signal,
      ...(options.json ? { expandEvents: true } : {}),
      onEvent: (event, expanded) => {
        if (options.json) {
          process.stdout.write(`${JSON.stringify(expanded!())}\n`);
          return;
        }
        const root = event.runId === holder?.runId;
        const line = formatEvent(event, { root });
        if (line !== undefined) say(event.type === "completeRun" && root ? process.stdout : process.stderr, line);
      },
    });
    switch (recovery.state) {
      case "taken":
        say(process.stderr, `perstack: job ${jobId} was taken over by another perstack process meanwhile; see it with: perstack log ${jobId}`);
        return EXIT.failed;
      case "running":
      case "detached":
        say(process.stderr, `job ${jobId}: detached; its agent is still running (attach again with: perstack attach ${jobId})`);
        return EXIT.interrupted;
      case "recorded":
        if (!options.json) say(process.stderr, `job ${jobId}: ${recovery.outcome.status} · ${recovery.jobDir}`);
        if (recovery.outcome.status === "stoppedByInteractiveTool") return EXIT.waitingForInput;
        return recovery.outcome.status === "completed" ? EXIT.completed : EXIT.failed;
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
