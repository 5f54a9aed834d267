// The reduced adversary suite (npm run adversaries runs the full one): every strategy, 30% of the
// identities, a few hundred work units.
import { expect, test } from 'vitest';
import { FULL_ADVERSARIES, FULL_HONEST, runAdversarySuite } from '../../tools/adversaries/suite.js';

test('cheaters get nothing: no wrong result accepted, no adversary credit, honest credit intact', async () => {
  const report = await runAdversarySuite({ workUnits: 200, honest: FULL_HONEST, adversaries: FULL_ADVERSARIES, timeoutMs: 120_000 });
  expect(report.adversaryShare).toBeCloseTo(0.3);
  expect(report.jobState).toBe('done');
  expect(report.wrongAccepted).toBe(0);
  expect(report.adversaryCredit).toBe(0);
  expect(report.adversaryCreditEverGranted).toBe(0);
  expect(report.honestCreditIntact).toBe(true);
  expect(report.ledgerVerified).toBe(true);
  // Every adversary was caught and cut off (suspended, or closed for flooding).
  expect(report.adversariesSuspended).toBe(FULL_ADVERSARIES.length);
}, 180_000);
