import { defineConfig } from 'vitest/config';

// Unit tests only: the coordinator (and any web/ unit tests). Browser end-to-end tests live in
// e2e/ and run under Playwright, not here.
export default defineConfig({
  test: {
    include: ['coordinator/**/*.test.ts', 'web/**/*.test.ts', 'clients/typescript/**/*.test.ts'],
    environment: 'node',
    // Most test files wait on sockets, timers and child processes more than they compute: three at a
    // time on a 2-core machine take ~40% less wall time than vitest's default there (cores − 1 = 1).
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
