import { defineConfig } from "vitest/config";

// Docker-backed tests share one engine on a 2-core machine: run files one at a time so image builds and
// containers do not starve each other, and give them room for first-time image builds.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 900_000,
    reporters: ["default"],
  },
});
