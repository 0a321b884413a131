// Debian's Chromium for the browser tests (driven by playwright-core). In CI a missing Chromium fails the test file
// (a green run must mean the browser test ran); elsewhere it skips and says why. PERSTACK_CHROMIUM overrides the
// executable (default /usr/bin/chromium; .ci/run installs it).
import { accessSync, constants } from "node:fs";
import { inCI } from "./docker.js";

export function requireChromium(what: string): string | undefined {
  const path = process.env.PERSTACK_CHROMIUM || "/usr/bin/chromium";
  try {
    accessSync(path, constants.X_OK);
    return path;
  } catch {
    const reason = `no Chromium executable at ${path}`;
    if (inCI()) throw new Error(`${reason}. CI=${process.env.CI} requires it for ${what}: apt-get install -y chromium (see .ci/run), or set PERSTACK_CHROMIUM.`);
    console.warn(`[skip] ${reason}; skipping ${what} (apt-get install -y chromium, or set PERSTACK_CHROMIUM; CI=true makes this a failure).`);
    return undefined;
  }
}

/**
 * Whether a failed request or console error is Chromium's net::ERR_NETWORK_CHANGED: Chromium aborts the requests in
 * flight, loopback ones included, whenever the host's network interfaces change, and the other tests' runs create and
 * remove Docker networks (bridges, veths) all the time. It is the test machine's doing, not the page's; the console
 * polls again on its next tick, and the steps that follow still have to succeed.
 */
export function isHostNetworkChange(text: string): boolean {
  return text.includes("net::ERR_NETWORK_CHANGED");
}
