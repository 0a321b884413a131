// The gateway as a program: `node dist/src/gateway/main.js`, started per run next to the sandbox. The config file
// comes from PERSTACK_GATEWAY_CONFIG, the token and the provider's credentials from the environment; or, with
// PERSTACK_GATEWAY_HANDOVER=stdin (how perstack runs it), all of them from one handover on stdin (handover.ts), which
// it waits for: a gateway can be started before its run's configuration exists. Stdout carries
// only JSON records, one a line (the first is {"type":"gatewayReady","port":N}); stderr carries a one-line reason
// when it cannot start. SIGTERM and SIGINT stop it cleanly; SIGUSR2 prints a gatewayMark record.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerstackError } from "../errors.js";
import { upstreamAuthFromEnv, withProviderHeaders } from "./credentials.js";
import { CONFIG_ENV, readGatewayConfig, readGatewayToken } from "./gateway-config.js";
import { GATEWAY_CONFIG_DIR, HANDOVER_ENV, HANDOVER_STDIN, HandoverError, MAX_HANDOVER_BYTES, parseHandover } from "./handover.js";
import { loadPriceTable } from "./pricing.js";
import { startGateway } from "./server.js";
import type { GatewayRecord } from "./types.js";

function print(record: GatewayRecord): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

/** All of stdin, up to the handover's bound. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_HANDOVER_BYTES) throw new HandoverError(`the handover on stdin is larger than ${MAX_HANDOVER_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * The environment the gateway reads: its own, or with a handover, its own plus the handover's secrets, with the
 * handover's files written where the config names them. The secrets stay in this object: never in process.env.
 */
async function runEnvironment(): Promise<NodeJS.ProcessEnv> {
  if (process.env[HANDOVER_ENV] !== HANDOVER_STDIN) return process.env;
  const handover = parseHandover(await readStdin());
  mkdirSync(GATEWAY_CONFIG_DIR, { recursive: true, mode: 0o700 });
  for (const [name, content] of Object.entries(handover.files)) writeFileSync(join(GATEWAY_CONFIG_DIR, name), content, { mode: 0o600 });
  return { ...process.env, ...handover.env, [CONFIG_ENV]: join(GATEWAY_CONFIG_DIR, "gateway.json") };
}

async function main(): Promise<void> {
  const env = await runEnvironment();
  const config = readGatewayConfig(env);
  const token = readGatewayToken(env);
  const auth = withProviderHeaders(await upstreamAuthFromEnv(config, env), env);
  const priceTable = loadPriceTable(config.pricing);
  const gateway = await startGateway({ config, token, auth, priceTable, emit: print });
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    gateway.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  // stdout is a pipe, written synchronously: what was printed before this record is ahead of it.
  process.on("SIGUSR2", () => print({ type: "gatewayMark" }));
  print({ type: "gatewayReady", port: gateway.port });
}

main().catch((err: unknown) => {
  // Messages name variables and paths, never their secret values; a stack adds nothing the user can act on.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`perstack gateway: ${message}\n`);
  process.exit(err instanceof PerstackError ? err.exitCode : 1);
});
