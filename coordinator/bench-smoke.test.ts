// A small run of `npm run bench:coordinator` (20 workers, 400 units): the bench works end to end
// and every unit goes through lease, result, validation and credit. Speed is not asserted here.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { expect, test } from 'vitest';

test('the coordinator load bench runs a small job to completion and prints its figures', () => {
  const root = resolve(import.meta.dirname, '..');
  const run = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', 'bench/coordinator.ts', '--workers', '20', '--units', '400', '--seconds', '60'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 90_000,
  });
  expect(run.status, `bench failed:\n${run.stdout}\n${run.stderr}`).toBe(0);
  const out = run.stdout;
  const report = JSON.parse(out.slice(out.indexOf('{'))) as Record<string, unknown> & { latencyMs: { p50: number; p99: number } };
  expect(report.jobState).toBe('done');
  expect(report.unitsDone).toBe(report.workUnits);
  expect(report.rejectedResults).toBe(0);
  expect(report.wuPerSecond).toBeGreaterThan(0);
  expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50);
  // Workers hold 4 leases by default and send what they finish together as batched frames.
  expect(report.slots).toBe(4);
  expect(report.resultsPerFrame).toEqual(expect.any(Number));
  expect(report.fleetCpuUsPerWu).toEqual(expect.any(Number));
}, 120_000);
