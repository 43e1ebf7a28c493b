import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql ships CommonJS (main) and ESM (module) builds without an exports map: Node, and so
    // Pothos and yoga, load the CommonJS one, Vite would hand our own imports the ESM one, and a
    // schema built by one is "from another module or realm" to the other's validate and subscribe.
    alias: [{ find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') }],
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files that start real processes do not benefit from more parallelism.
    maxWorkers: 2,
    globalSetup: ['test/testkit/global-setup.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'kiln', include: ['api/**/*.test.ts', 'runner/**/*.test.ts', 'test/**/*.test.ts'] },
      },
      {
        // The api suites once more with RabbitMQ between api and runners, as deployed, instead of
        // the in-process broker (startTestApp reads KILN_TEST_BROKER).
        extends: true,
        test: {
          name: 'api-on-rabbitmq',
          include: ['api/**/*.test.ts'],
          exclude: ['api/db/**'],
          env: { KILN_TEST_BROKER: 'amqp' },
        },
      },
    ],
  },
});
