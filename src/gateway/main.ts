// The gateway as a program: `node dist/src/gateway/main.js`, started per run next to the sandbox. The config file
// comes from PERSTACK_GATEWAY_CONFIG, the token and the provider's credentials from the environment. Stdout carries
// only JSON records, one a line (the first is {"type":"gatewayReady","port":N}); stderr carries a one-line reason
// when it cannot start. SIGTERM and SIGINT stop it cleanly; SIGUSR2 prints a gatewayMark record.
import { PerstackError } from "../errors.js";
import { upstreamAuthFromEnv, withProviderHeaders } from "./credentials.js";
import { readGatewayConfig, readGatewayToken } from "./gateway-config.js";
import { loadPriceTable } from "./pricing.js";
import { startGateway } from "./server.js";
import type { GatewayRecord } from "./types.js";

function print(record: GatewayRecord): void {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

async function main(): Promise<void> {
  const env = process.env;
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
