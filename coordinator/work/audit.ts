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
// Cost is bounded: audits run one at a time on one thread, so a flood of results costs waiting, not
// CPU. They wait in two queues, each bounded: quorums of established identities (sampled, so few by
// construction; `auditMaxWaiting`) always go first, quorums with a new member (`auditMaxWaitingNew`)
// after them. Identities are free to mint, so a flood of new ones only fills their own queue and
// delays their own settlement: it never pushes an established quorum's audit out. A waiting audit
// holds its unit's record and a promise, no shard or result bytes. A drawn quorum the coordinator
// cannot recompute (a unit above `auditMaxFlops`, its queue full, no verdict) is not settled as it
// stands: the validator escalates it to one more replica from outside the quorum (escalation.ts).
import { compareWithin } from '../jobs/compare.js';
import { jobKind } from '../jobs/index.js';
import type { ShardStore } from '../store/shards.js';
import type { Store, WorkUnitRecord } from '../store/store.js';
import { randomFraction } from '../util/random.js';
import { recomputeOffThread } from './audit-thread.js';
import { auditProbability, DEFAULT_TRUST_POLICY, type TrustPolicy } from './trust.js';

export type AuditVerdict = 'agrees' | 'forged' | 'none';

/** Why a drawn quorum had no audit here: the validator escalates it instead. */
export type NoAudit = 'too big' | 'queue full';

/** Which queue a drawn quorum's audit waits in: every member established, or one of them new. */
export type AuditQueue = 'established' | 'newcomers';

export interface AuditStats {
  /** Quorums recomputed, and those of them the recomputation proved wrong. */
  audited: number;
  forged: number;
  /**
   * Drawn quorums the coordinator could not recompute (too big, their queue full, no verdict) that
   * waited for one more replica from outside the quorum instead; and those of them whose extra
   * replicas outvoted the quorum.
   */
  escalated: number;
  outvoted: number;
  /** Drawn quorums that settled with neither an audit nor an extra replica (the unit's replicas at their cap, or nobody outside the quorum connected). */
  skipped: number;
}

export interface AuditContext {
  store: Store;
  shards: ShardStore;
  log: (msg: string) => void;
  trustPolicy?: TrustPolicy;
}

/** An audit waiting for its turn: the unit, which result to check, and who waits for the verdict. */
interface Waiting {
  wu: WorkUnitRecord;
  resultId: string;
  done: (verdict: AuditVerdict) => void;
}

export class Auditor {
  readonly stats: AuditStats = { audited: 0, forged: 0, escalated: 0, outvoted: 0, skipped: 0 };
  private readonly queues: Record<AuditQueue, Waiting[]> = { established: [], newcomers: [] };
  private running = false;

  constructor(private readonly ctx: AuditContext) {}

  private get policy(): TrustPolicy {
    return this.ctx.trustPolicy ?? DEFAULT_TRUST_POLICY;
  }

  /** Audits waiting for their turn (the one running not counted), by queue. */
  waiting(): Record<AuditQueue, number> {
    return { established: this.queues.established.length, newcomers: this.queues.newcomers.length };
  }

  /**
   * Whether this quorum's result is to be recomputed before it settles (drawn once per quorum), and
   * in which queue; null when not. `volunteerIds`: the identities that back it.
   */
  async draw(wu: WorkUnitRecord, volunteerIds: string[]): Promise<AuditQueue | null> {
    const kind = jobKind(wu.kind);
    if (!kind || kind.checksOutputs) return null;
    const policy = this.policy;
    const streaks = await Promise.all(volunteerIds.map(async (id) => (await this.ctx.store.getTrust(id)).validStreak));
    const least = Math.min(...streaks);
    const p = auditProbability(least, policy);
    if (!(p >= 1 || randomFraction() < p)) return null;
    return least < policy.trustedAfter ? 'newcomers' : 'established';
  }

  /**
   * Recomputes the unit (after the audits ahead of it: the established queue first) and compares
   * its result `resultId` with it. 'too big' or 'queue full' at once when it cannot wait here.
   */
  audit(wu: WorkUnitRecord, resultId: string, queue: AuditQueue): Promise<AuditVerdict | NoAudit> {
    const policy = this.policy;
    if (wu.flops > policy.auditMaxFlops) return Promise.resolve('too big');
    const waiting = this.queues[queue];
    if (waiting.length >= (queue === 'established' ? policy.auditMaxWaiting : policy.auditMaxWaitingNew)) return Promise.resolve('queue full');
    return new Promise((done) => {
      waiting.push({ wu, resultId, done });
      void this.drain();
    });
  }

  /** Runs the waiting audits one at a time, established quorums' first, until none wait. */
  private async drain() {
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.nextWaiting(); next; next = this.nextWaiting()) next.done(await this.recompute(next.wu, next.resultId));
    } finally {
      this.running = false;
    }
  }

  private nextWaiting(): Waiting | undefined {
    return this.queues.established.shift() ?? this.queues.newcomers.shift();
  }

  /** Never rejects: a recomputation that fails is the verdict 'none'. */
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
      this.ctx.log(`audit of ${wu.id} gave no verdict: ${(err as Error).message}`);
      return 'none';
    }
  }
}
