// The reduced fuzz run (npm run fuzz sends 10,000, then 2,000 under the real limits): every
// malformed message is answered with an error and the coordinator's state does not change.
import { expect, test } from 'vitest';
import { fuzzCoordinator } from '../../tools/fuzz/run.js';

test('1,000 malformed WebSocket and HTTP messages: each answered with an error, state unchanged', async () => {
  const report = await fuzzCoordinator({ count: 1000, seed: 7 });
  expect(report.examples).toEqual([]);
  expect(report.answeredWithError).toBe(1000);
  expect(report.websocket).toBeGreaterThan(500);
  expect(report.http).toBeGreaterThan(150);
  // Rooms and the swarm are fuzzed too.
  expect(Object.keys(report.byKind).filter((k) => /room/.test(k)).length).toBeGreaterThanOrEqual(4);
  expect(Object.keys(report.byKind).filter((k) => /holdings/.test(k)).length).toBeGreaterThanOrEqual(2);
  expect(report.oversizedFrameClose).toBe(1009);
  expect(report.coordinatorUp).toBe(true);
  expect(report.integrityCheck).toBe('ok');
  expect(report.ledgerVerified).toBe(true);
  expect(report.stateUnchanged).toBe(true);
}, 120_000);

test('under the real limits (lockout, rate limits, connection caps) too', async () => {
  const report = await fuzzCoordinator({ count: 400, seed: 8, realLimits: true });
  expect(report.realLimits).toBe(true);
  expect(report.examples).toEqual([]);
  expect(report.answeredWithError).toBe(400);
  expect(report.oversizedFrameClose).toBe(1009);
  expect(report.coordinatorUp).toBe(true);
  expect(report.integrityCheck).toBe('ok');
  expect(report.stateUnchanged).toBe(true);
}, 120_000);
