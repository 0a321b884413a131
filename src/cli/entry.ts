#!/usr/bin/env node
// The `perstack` executable. It checks the Node version before anything else loads: on an old Node the CLI's
// dependencies fail while they are being imported (execa 10 calls Set methods Node 20 lacks), with a stack trace
// that does not say what is wrong. So this module has no static imports, uses only syntax that old Node versions
// parse (no top-level await, no `??`), and loads the CLI only once the version is known to be good.

// package.json `engines.node`; test/e2e/old-node.test.ts checks that the message names the same version.
const MINIMUM = [22, 13];

const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < MINIMUM[0]! || (major === MINIMUM[0] && minor < MINIMUM[1]!)) {
  process.stderr.write(
    `perstack: Node.js ${MINIMUM.join(".")} or newer is needed, and this is Node.js v${process.versions.node}: ` +
      'install it with "nvm install 22" or from https://nodejs.org/en/download, then run perstack again\n',
  );
  process.exitCode = 1;
} else {
  // Node's compile cache (in the system's temporary directory) spares every later start compiling the CLI's modules
  // again: about 30 ms of each run. Loaded here, not imported: this module has no static imports (see above).
  void import("node:module")
    .then((module) => {
      if (!process.env.NODE_COMPILE_CACHE && module.enableCompileCache) module.enableCompileCache();
    })
    .catch(function () {
      // A cache that cannot be used only costs the time it would have saved.
    })
    // main.js runs the CLI as it loads; its own errors end in one line and an exit code.
    .then(() => import("./main.js"));
}
