// The audit: replication assumes replicas are independent, and colluding identities that draw both
// replicas of a unit agree on any wrong answer they like (a forged training Δ passes the cheap check
// when its loss is forged too). So before a quorum's result settles, the coordinator sometimes
// recomputes the unit itself from its inputs (jobs/references.ts, on a worker thread) and compares
// the two with the kind's own agreement test. A quorum that disagrees with the coordinator is forged:
// the validator rejects its results, strikes every identity that backed it and the unit wants fresh
// replicas. Because the audit runs before settlement, an iterative job's round never aggregates an
// audited forgery (its round waits for the unit like for any open unit).
//
// Which quorums: kinds whose cheap check vouches for each output on its own (matmul: Freivalds and
// spot recomputation) gain nothing from it; for the rest, every quorum with a new identity in it
// (fewer than `trustedAfter` results in a row), then fewer as the least-trusted member's streak
// grows, never below `auditMinProbability` — drawn with crypto randomness after the results are in.
//
// Cost is bounded: units above `auditMaxFlops` are not audited; audits run one at a time on one
// thread, so a flood of results costs waiting, not CPU; and once more than `auditMaxWaiting` units
// wait, only quorums with a new member wait for one (the rest settle as their quorum says).
import { compareWithin } from '../jobs/compare.js';
import { jobKind } from '../jobs/index.js';
import type { ShardStore } from '../store/shards.js';
import type { Store, WorkUnitRecord } from '../store/store.js';
import { randomFraction } from '../util/random.js';
import { recomputeOffThread } from './audit-thread.js';
import { auditProbability, DEFAULT_TRUST_POLICY, type TrustPolicy } from './trust.js';

export type AuditVerdict = 'agrees' | 'forged' | 'none';

export interface AuditStats {
  /** Quorums recomputed, and those of them the recomputation proved wrong. */
  audited: number;
  forged: number;
  /** Quorums drawn for an audit that had none: too many waiting, too big, or the recomputation failed. */
  skipped: number;
}

export interface AuditContext {
  store: Store;
  shards: ShardStore;
  log: (msg: string) => void;
  trustPolicy?: TrustPolicy;
}

export class Auditor {
  readonly stats: AuditStats = { audited: 0, forged: 0, skipped: 0 };
  /** The audit running or last queued: each waits for the one before (one at a time). */
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(private readonly ctx: AuditContext) {}

  private get policy(): TrustPolicy {
    return this.ctx.trustPolicy ?? DEFAULT_TRUST_POLICY;
  }

  /**
   * Whether this quorum's result is to be recomputed before it settles (drawn once per quorum).
   * `volunteerIds`: the identities that back it.
   */
  async wanted(wu: WorkUnitRecord, volunteerIds: string[]): Promise<boolean> {
    const kind = jobKind(wu.kind);
    if (!kind || kind.checksOutputs) return false;
    const policy = this.policy;
    const streaks = await Promise.all(volunteerIds.map(async (id) => (await this.ctx.store.getTrust(id)).validStreak));
    const least = Math.min(...streaks);
    const p = auditProbability(least, policy);
    if (!(p >= 1 || randomFraction() < p)) return false;
    const isNew = least < policy.trustedAfter;
    if (wu.flops > policy.auditMaxFlops || (!isNew && this.waiting >= policy.auditMaxWaiting)) {
      this.stats.skipped++;
      return false;
    }
    return true;
  }

  /** Recomputes the unit (after the audits ahead of it) and compares its result `resultId` with it. */
  audit(wu: WorkUnitRecord, resultId: string): Promise<AuditVerdict> {
    this.waiting++;
    const run = this.tail.then(() => this.recompute(wu, resultId));
    this.tail = run.catch(() => undefined);
    return run.finally(() => this.waiting--);
  }

  private async recompute(wu: WorkUnitRecord, resultId: string): Promise<AuditVerdict> {
    const kind = jobKind(wu.kind);
    try {
      const result = (await this.ctx.store.liveResults(wu.id)).find((r) => r.id === resultId);
      if (!result) throw new Error('its result is no longer live'); // the round closed or the job ended meanwhile
      const output = new Float32Array(result.data.slice().buffer);
      // Inputs are read only now, one unit at a time: waiting units hold no shard bytes.
      const inputs: Record<string, Uint8Array> = {};
      for (const [name, sha] of Object.entries(wu.inputs)) {
        const bytes = await this.ctx.shards.get(sha);
        if (!bytes) throw new Error(`input ${name} (shard ${sha}) is missing`);
        inputs[name] = bytes;
      }
      const reference = await recomputeOffThread(wu, inputs, this.policy.auditTimeoutMs);
      const agrees = kind?.agree ? kind.agree(wu, reference, output) : compareWithin(reference, output, wu.tolerance).ok;
      this.stats.audited++;
      if (!agrees) this.stats.forged++;
      return agrees ? 'agrees' : 'forged';
    } catch (err) {
      this.stats.skipped++;
      this.ctx.log(`audit of ${wu.id} gave no verdict: ${(err as Error).message}`);
      return 'none';
    }
  }
}

