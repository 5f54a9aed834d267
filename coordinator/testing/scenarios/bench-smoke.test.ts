// Small runs of `npm run bench:coordinator` (20 workers, 400 units: every unit goes through lease,
// result, validation and credit) and `npm run bench:writer`. Speed is not asserted here.
import { expect, test } from 'vitest';
import { runBench } from '../helpers.js';

test('the coordinator load bench runs a small job to completion and prints its figures', () => {
  const report = runBench<Record<string, unknown> & { latencyMs: { p50: number; p99: number } }>(
    ['--expose-gc', '--import', 'tsx', 'bench/coordinator.ts', '--workers', '20', '--units', '400', '--seconds', '60'],
    90_000,
  );
  expect(report.jobState).toBe('done');
  expect(report.unitsDone).toBe(report.workUnits);
  expect(report.rejectedResults).toBe(0);
  expect(report.wuPerSecond).toBeGreaterThan(0);
  expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p50);
  // Workers hold 4 leases by default and send what they finish together as batched frames.
  expect(report.slots).toBe(4);
  expect(report.resultsPerFrame).toEqual(expect.any(Number));
  expect(report.fleetCpuUsPerWu).toEqual(expect.any(Number));
  expect(report.gcPauseUsPerWu).toEqual({ scavenge: expect.any(Number), other: expect.any(Number), scavenges: expect.any(Number) });
}, 120_000);

test('the SQLite writer bench times every statement of the write path and accounts for the units it ran', () => {
  const report = runBench<{
    units: number;
    commits: number;
    cpuUsPerUnit: number;
    inStatementsUsPerUnit: number;
    statements: { sql: string; calls: number }[];
  }>(['--import', 'tsx', 'bench/writer.ts', '--workers', '20', '--rounds', '2', '--warmup', '1', '--per-commit', '10'], 60_000);
  // 20 workers × 4 slots × 2 measured rounds, in commits of 10 workers' frames.
  expect(report.units).toBe(160);
  expect(report.commits).toBe(4);
  const calls = (prefix: string) => report.statements.find((s) => s.sql.startsWith(prefix))?.calls;
  expect(calls('INSERT INTO results')).toBe(160);
  expect(calls('INSERT INTO ledger(')).toBe(160);
  expect(calls('COMMIT')).toBe(4);
  expect(report.inStatementsUsPerUnit).toBeGreaterThan(0);
  expect(report.cpuUsPerUnit).toBeGreaterThan(0);
}, 90_000);
