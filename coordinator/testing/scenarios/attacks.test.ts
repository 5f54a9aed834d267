// The reduced attack suite (npm run attacks runs the full one): a coordinator started as npm start
// starts it, with its real limits, attacked over loopback; every attack must be held.
import { expect, test } from 'vitest';
import { runAttackSuite } from '../../tools/attacks/suite.js';

test('an outside attacker: every attack is held', async () => {
  const report = await runAttackSuite({ reduced: true });
  const broken = Object.entries(report).filter(([, r]) => !r.held);
  expect(broken).toEqual([]);
  expect(Object.keys(report).length).toBeGreaterThanOrEqual(20);
  // The figures the suite exists for.
  expect(report['failed-logins'].figure.failedLoginsAllowedPerMinute).toBeLessThanOrEqual(10);
  expect(report['tokenless-rooms-and-demos'].figure.mibStored).toBeLessThan(23);
  expect(report['holdings-flood'].figure.claimsRecorded).toBeLessThanOrEqual(32);
}, 240_000);
