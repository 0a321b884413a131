import { defineConfig } from "vitest/config";

// Docker-backed tests share one engine on a 2-core machine: run files one at a time so image builds and
// containers do not starve each other, and give them room for first-time image builds. The global setup provides
// the base images those builds start from.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ["default"],
  },
});
