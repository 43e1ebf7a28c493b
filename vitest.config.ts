import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['api/**/*.test.ts', 'runner/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files that start real processes do not benefit from more parallelism.
    maxWorkers: 2,
    globalSetup: ['test/testkit/global-setup.ts'],
  },
});
