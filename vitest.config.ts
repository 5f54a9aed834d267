import { defineConfig } from 'vitest/config';

// Unit tests only: the coordinator (and any web/ unit tests). Browser end-to-end tests live in
// e2e/ and run under Playwright, not here.
export default defineConfig({
  test: {
    include: ['coordinator/**/*.test.ts', 'web/**/*.test.ts', 'clients/typescript/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
