import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real brokers and servers on loopback; keep them from fighting
    // over two cores.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
