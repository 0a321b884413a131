// `perstack ui`: the web console over this directory's perstack/jobs, read-only, on loopback (src/server/local-console.ts).
// Loaded only when it runs.
import { randomBytes } from "node:crypto";
import { InvalidOptionError } from "../errors.js";
import { perstackDirOf } from "../job/prepare-run.js";
import { buildLocalConsole } from "../server/local-console.js";

export interface UiOptions {
  port: string;
}

export async function uiCommand(options: UiOptions): Promise<void> {
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new InvalidOptionError(`--port ${options.port}: give a port number from 0 to 65535`);
  const perstackDir = perstackDirOf(process.cwd(), process.env);
  // A fresh token per start: the URL printed here is the only way in, for this user, while the process lives.
  const token = randomBytes(24).toString("base64url");
  const app = await buildLocalConsole({ perstackDir, token });
  try {
    await app.listen({ host: "127.0.0.1", port });
  } catch (error) {
    await app.close();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") throw new InvalidOptionError(`--port ${port}: the port is in use; give another one, or --port 0 for any free one`);
    throw error;
  }
  const { port: bound } = app.server.address() as { port: number };
  // The token goes in the fragment: browsers never send a fragment to a server, nor put it in a Referer.
  process.stdout.write(`perstack ui: the jobs of ${perstackDir}, read-only\nopen http://127.0.0.1:${bound}/#token=${token}\n`);
  const stop = () => void app.close().finally(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
