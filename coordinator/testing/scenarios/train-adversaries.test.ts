// The reduced training adversary suite (npm run adversaries runs a larger one): a train job with 30%
// adversarial identities of the five kinds (sign-flipped ×10, random, zero, stale-round, a colluding
// pair). Every result they send is stopped — by the check, replication or the audit — so none is
// accepted, they earn nothing, honest credit is exact, and the final loss is the all-honest run's.
import { expect, test } from 'vitest';
import { runTrainAdversarySuite } from '../../tools/adversaries/train-suite.js';
import { TRAIN_ADVERSARIES, TRAIN_HONEST, TRAIN_STRATEGIES } from '../../tools/adversaries/train-workers.js';

test('training adversaries get nothing: no forged Δ accepted, no credit, the final loss within 5% of the all-honest run', async () => {
  const r = await runTrainAdversarySuite({ honest: TRAIN_HONEST, adversaries: TRAIN_ADVERSARIES, rounds: 3, unitsPerRound: 10, localSteps: 8, hidden: 16, timeoutMs: 60_000 });
  console.log(JSON.stringify(r));
  expect(r.adversaryShare).toBeCloseTo(0.3);
  expect(r.jobState).toBe('done');
  expect(Object.keys(r.byKind).sort()).toEqual([...TRAIN_STRATEGIES].sort());
  for (const k of Object.values(r.byKind)) {
    expect(k.accepted).toBe(0);
    expect(k.credit).toBe(0);
    expect(k.creditEverGranted).toBe(0);
    // Every result is accounted for by what stopped it.
    expect(k.caughtByCheck + k.caughtByReplication + k.caughtByAudit + k.accepted + k.other).toBe(k.unitsSent);
  }
  // Random and zero Δs come with the honest losses: the check catches them (and suspends their senders).
  for (const s of ['random', 'zero'] as const) expect(r.byKind[s]!.caughtByCheck).toBeGreaterThan(0);
  // The colluding pair connects first and draws one unit together: the audit catches its quorum.
  expect(r.byKind.collude!.caughtByAudit).toBeGreaterThan(0);
  expect(r.byKind.collude!.suspended).toBe(2);
  expect(r.honestCreditExact).toBe(true);
  expect(r.ledgerVerified).toBe(true);
  expect(Math.abs(r.loss.ratio - 1)).toBeLessThanOrEqual(0.05);
  expect(r.loss.attacked).toBeLessThan(r.loss.start);
}, 120_000);
