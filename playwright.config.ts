import { defineConfig } from '@playwright/test';

/** Debian's Chromium with WebGPU on SwiftShader (see DESIGN.md): no GPU and no browser download needed. */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/**
 * Test-only WebRTC settings: headless Chromium finds no ICE candidate on loopback unless both
 * lift its filters (DESIGN.md). Real volunteers' browsers need neither.
 */
export const WEBRTC_LOOPBACK_ARGS = ['--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream'];

export default defineConfig({
  testDir: 'e2e',
  timeout: 180_000,
  // Each test runs several browsers on a 2-core machine: one test at a time.
  workers: 1,
  fullyParallel: false,
  // One retry, for the failure report of the second run (e2e/fixtures.ts), never to pass a run: a
  // test that fails once and then passes is flaky, and a flaky test fails the run — its cause gets
  // fixed, not retried away.
  retries: 1,
  failOnFlakyTests: true,
  reporter: [['list']],
  globalSetup: './e2e/global-setup.ts',
  use: {
    launchOptions: { executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...WEBRTC_LOOPBACK_ARGS, '--enable-unsafe-webgpu'] },
    trace: 'off',
  },
});
