import { defineConfig } from "vitest/config";

// Docker-backed tests share one engine on a 2-core machine: run files one at a time so image builds and
// containers do not starve each other, and give them room for first-time image builds. The global setup provides
// the base images those builds start from. Runs keep no warm shells (PERSTACK_WARM_POOL=0), so that every test
// finds and leaves the engine as its runs made it; test/e2e/warm-shells.test.ts turns them on.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    fileParallelism: false,
    env: { PERSTACK_WARM_POOL: "0" },
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ["default"],
  },
});
