// Adaptive replication (as BOINC does it): how much the coordinator trusts each volunteer identity,
// and what that trust buys. A new identity's results are always replicated; a host with a long
// streak of verified results is replicated with decreasing probability, down to a floor, so a
// patient cheater is still re-checked at random. Every canonical result also passes the job
// kind's independent check (Freivalds + spot recomputation), whatever its replication. The same
// streaks decide how often the coordinator audits a quorum before it settles (audit.ts): always
// while a member is new, then less, never below a floor.
//
// A result that fails the check (or a forged / mis-addressed submission) is a strike: the streak
// drops to zero, the identity is suspended for a time that doubles with each strike, and its
// unreplicated results since it was last confirmed by a replica are revoked and recomputed.
// A result that passes the check but disagrees with an agreeing quorum resets the streak (and
// revokes the same way) without a suspension: honest but flaky hardware does that.
import type { TrustRecord } from '../store/store.js';
import { randomFraction } from '../util/random.js';

export { freshTrust, type TrustRecord } from '../store/store.js';

export interface TrustPolicy {
  /** Results in a row before a host's results may go unreplicated. */
  trustedAfter: number;
  /** The replication probability never falls below this. */
  minReplicateProbability: number;
  /** First suspension; each further strike doubles it, up to suspendMaxMs. */
  suspendBaseMs: number;
  suspendMaxMs: number;
  /**
   * The audit (audit.ts): the probability that a quorum with a member of fewer than `trustedAfter`
   * results in a row is recomputed by the coordinator before it settles; for longer streaks it falls
   * as (trustedAfter / streak)², never below `auditMinProbability`.
   */
  auditNewProbability: number;
  auditMinProbability: number;
  /**
   * Units of more FLOPs than this are never recomputed by the coordinator: a drawn quorum of such a
   * unit is escalated to one more replica from outside it instead (escalation.ts).
   */
  auditMaxFlops: number;
  /** An audit that takes longer gives no verdict (the quorum is escalated, as above). */
  auditTimeoutMs: number;
  /**
   * Audits that may wait, of quorums whose members are all established (they go first), and of
   * quorums with a new member (after them). A drawn quorum that finds its queue full is escalated.
   */
  auditMaxWaiting: number;
  auditMaxWaitingNew: number;
}

export const DEFAULT_TRUST_POLICY: TrustPolicy = {
  trustedAfter: 4,
  minReplicateProbability: 0.03,
  suspendBaseMs: 10 * 60_000,
  suspendMaxMs: 7 * 24 * 3_600_000,
  auditNewProbability: 1,
  auditMinProbability: 0.05,
  auditMaxFlops: 4e9,
  auditTimeoutMs: 120_000,
  auditMaxWaiting: 256,
  auditMaxWaitingNew: 1024,
};

/**
 * Probability that a result of a host with this streak is replicated: 1 until it is trusted, then
 * (trustedAfter / streak)², so a host that has been right 40 times in a row is re-checked by a
 * replica about 1 time in 100 (the floor keeps it at least 3%).
 */
export function replicateProbability(streak: number, policy: TrustPolicy = DEFAULT_TRUST_POLICY): number {
  if (streak < policy.trustedAfter) return 1;
  return Math.max(policy.minReplicateProbability, (policy.trustedAfter / streak) ** 2);
}

/** Draws whether to replicate (crypto randomness: a host cannot predict which results are re-checked). */
export function shouldReplicate(t: TrustRecord, policy: TrustPolicy = DEFAULT_TRUST_POLICY): boolean {
  const p = replicateProbability(t.validStreak, policy);
  if (p >= 1) return true;
  return randomFraction() < p;
}

/**
 * Probability that a quorum is audited, from the shortest streak among its members: every quorum
 * with a new identity in it (at the default of 1), then (trustedAfter / streak)², down to the floor.
 */
export function auditProbability(streak: number, policy: TrustPolicy = DEFAULT_TRUST_POLICY): number {
  if (streak < policy.trustedAfter) return policy.auditNewProbability;
  return Math.max(policy.auditMinProbability, policy.auditNewProbability * (policy.trustedAfter / streak) ** 2);
}

export function isSuspended(t: TrustRecord, now: number): boolean {
  return t.suspendedUntil > now;
}

export function afterValid(t: TrustRecord, now: number, replicated: boolean): TrustRecord {
  return { ...t, validStreak: t.validStreak + 1, verifiedAt: replicated ? now : t.verifiedAt };
}

export function afterDisagreement(t: TrustRecord): TrustRecord {
  return { ...t, validStreak: 0 };
}

export function afterStrike(t: TrustRecord, now: number, policy: TrustPolicy = DEFAULT_TRUST_POLICY): TrustRecord {
  const strikes = t.strikes + 1;
  const ms = Math.min(policy.suspendMaxMs, policy.suspendBaseMs * 2 ** Math.min(30, strikes - 1));
  return { ...t, validStreak: 0, strikes, suspendedUntil: now + ms };
}
