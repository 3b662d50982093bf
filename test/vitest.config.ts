import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs in parallel and needs nothing; `system` holds the tests that
// use the kernel, network namespaces or the lab (root-gated) and runs one file at a time
// so that they do not fight over the machine's two cores.
export default defineConfig({
  test: {
    root: new URL('..', import.meta.url).pathname,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'pkg/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['test/system/**/*.test.ts', 'test/conformance/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
