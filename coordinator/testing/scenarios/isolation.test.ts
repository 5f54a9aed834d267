// Every response is cross-origin isolated (COOP same-origin + COEP require-corp): the page, its
// worker scripts and wasm, the API and even errors, so the CPU backend's WebAssembly gets threads.
// And every one may be loaded by other sites (CORP cross-origin: widget.js, /embed), isolated or not.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { makeTempDir, removeDir, startTestCoordinator, type TestCoordinator } from '../helpers.js';

let grid: TestCoordinator;
let staticDir: string;
beforeAll(async () => {
  staticDir = makeTempDir();
  mkdirSync(join(staticDir, 'assets'));
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(staticDir, 'widget.js'), '0;');
  writeFileSync(join(staticDir, 'assets', 'compute.worker-x.js'), 'export {};');
  writeFileSync(join(staticDir, 'assets', 'ort-x.wasm'), new Uint8Array([0, 97, 115, 109]));
  grid = await startTestCoordinator({ staticDir });
});
afterAll(async () => {
  await grid.stop();
  removeDir(staticDir);
});

test.each(['/', '/widget.js', '/assets/compute.worker-x.js', '/assets/ort-x.wasm', '/api/health', '/api/jobs', '/no/such/route', '/shards/abc'])('%s', async (path) => {
  const res = await fetch(grid.base + path);
  expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
  expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
  expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
});
