// dockerode loads an SSH client (ssh2, for DOCKER_HOST=ssh://…) and gRPC with protobufjs (for BuildKit sessions) as it
// is loaded: about 40 ms of every perstack process that talks to Docker (a run's CLI and its teardown process), though
// a run uses neither unless DOCKER_HOST is ssh://. Where Node has synchronous module hooks (22.15 and later), the two
// modules of dockerode's that pull them in are replaced by stand-ins that load the real module on their first call.
// Elsewhere nothing changes. Imported first by the CLI (main.ts) and the teardown process (teardown-main.ts).
import module from "node:module";
import { fileURLToPath } from "node:url";

/** dockerode's BuildKit session (gRPC) and docker-modem's SSH agent (ssh2): each module exports one function. */
const DEFERRED = /\/node_modules\/(?:dockerode\/lib\/session|docker-modem\/lib\/ssh)\.js$/;
/**
 * A stand-in's URL is the real module's with this suffix: a file that does not exist, named apart from the real one so
 * that the two are cached apart, and what a stand-in requires is never replaced again.
 */
const STAND_IN = ".perstack-deferred.cjs";

function standInSource(realPath: string): string {
  return `"use strict";\nmodule.exports = function () {\n  return require(${JSON.stringify(realPath)}).apply(this, arguments);\n};\n`;
}

export function deferDockerExtras(): boolean {
  if (typeof module.registerHooks !== "function") return false;
  module.registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      if (!DEFERRED.test(resolved.url) || context.parentURL?.endsWith(STAND_IN)) return resolved;
      return { ...resolved, url: `${resolved.url}${STAND_IN}`, format: "commonjs", shortCircuit: true };
    },
    load(url, context, nextLoad) {
      if (!url.endsWith(STAND_IN)) return nextLoad(url, context);
      return { format: "commonjs", source: standInSource(fileURLToPath(url.slice(0, -STAND_IN.length))), shortCircuit: true };
    },
  });
  return true;
}

deferDockerExtras();
