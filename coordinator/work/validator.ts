// Validation, the BOINC validator's and assimilator's roles: a unit's stored results are compared
// until a quorum agrees (or one trusted host's checked result stands alone: adaptive replication,
// trust.ts); a sample of quorums is recomputed by the coordinator first (audit.ts: colluding
// identities), a forged one struck and recomputed by others, one drawn that cannot be recomputed
// here escalated to more replicas (escalation.ts); the quorum's result becomes canonical and its
// volunteers are credited in the sealed ledger; dissenters lose trust, and strikes (forged or
// failing results) suspend an identity and revoke its unconfirmed credit. A job whose units are
// all canonical is assembled into its result.
import { jobKind } from '../jobs/index.js';
import { findQuorum } from '../jobs/compare.js';
import type { ShardStore } from '../store/shards.js';
import type { Credited, SettlementOutcome, Store, WorkUnitRecord } from '../store/store.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import { Auditor } from './audit.js';
import { Escalations, type Escalation } from './escalation.js';
import { Rounds } from './rounds.js';
import type { Scheduler } from './scheduler.js';
import { afterDisagreement, afterStrike, afterValid, DEFAULT_TRUST_POLICY, shouldReplicate, type TrustPolicy, type TrustRecord } from './trust.js';

export interface ResultContext {
  store: Store;
  shards: ShardStore;
  scheduler: Scheduler;
  now: () => number;
  log: (msg: string) => void;
  trustPolicy?: TrustPolicy;
  /** Closes every connection of an identity (it was just suspended). */
  disconnect?: (volunteerId: string, reason: string) => void;
}

/** At most this many replicas of one unit before it is declared failed. */
export function maxReplicas(replication: number): number {
  return Math.min(8, 2 * replication + 1);
}

export function asFloat32(bytes: Uint8Array): Float32Array {
  // Copy: the bytes may sit at an offset that is not a multiple of 4.
  return new Float32Array(bytes.slice().buffer);
}

/** A result that backs (or disagrees with) a quorum: ids only. */
interface Backer {
  id: string;
  volunteerId: string;
}

interface Quorum {
  winners: Backer[];
  losers: Backer[];
}

export class Validator {
  /**
   * A unit's results are handled one at a time, so two replicas arriving together cannot both
   * settle it; different units proceed concurrently (and their writes share commits).
   */
  private readonly units = new KeyedQueue();
  /** Iterative jobs' rounds: closed as their units settle (work/rounds.ts). */
  readonly rounds: Rounds;
  /** Recomputes a sample of quorums before they settle (audit.ts). */
  readonly audits: Auditor;
  /** Units whose drawn audit could not run here, waiting for more replicas instead (escalation.ts). */
  private readonly escalations = new Escalations();

  constructor(private readonly ctx: ResultContext) {
    this.rounds = new Rounds(ctx);
    this.audits = new Auditor(ctx);
  }

  /** Runs `fn` in the unit's chain: everything that may settle a unit or change its target runs here. */
  serial<T>(wuId: string, fn: () => Promise<T>): Promise<T> {
    return this.units.run(wuId, fn);
  }

  /** A checked result of a replication-1 job's unit settles it by itself. */
  async standsAlone(wu: WorkUnitRecord): Promise<boolean> {
    const job = await this.jobFacts(wu.jobId);
    return job?.replication === 1 && wu.target === 1;
  }

  /** A job's id and replication never change: each job is read once, not once per result. */
  private readonly jobs = new Map<string, { id: string; replication: number }>();

  private async jobFacts(jobId: string) {
    const hit = this.jobs.get(jobId);
    if (hit) return hit;
    const job = await this.ctx.store.getJob(jobId);
    if (!job) return null;
    if (this.jobs.size >= 10_000) this.jobs.clear();
    const facts = { id: job.id, replication: job.replication };
    this.jobs.set(jobId, facts);
    return facts;
  }

  /**
   * Finishes what a crash interrupted: units whose stored results were never compared, and jobs
   * whose last unit settled but whose result was never assembled.
   */
  async recover() {
    const { unitsToValidate, jobsToAssemble } = await this.ctx.store.unfinishedWork();
    for (const wuId of unitsToValidate) {
      const wu = await this.ctx.store.getWorkUnit(wuId);
      if (wu) await this.serial(wuId, () => this.validate(wu));
    }
    for (const jobId of jobsToAssemble) await this.assimilate(jobId);
    // Iterative jobs: a round whose units settled before the crash is closed now (once: see rounds.ts).
    await this.rounds.resume();
    return { validated: unitsToValidate.length, assembled: jobsToAssemble.length };
  }

  /**
   * Looks for a quorum among the unit's live results; settles, asks for more, or fails it. `wu` is
   * as read just before, inside this unit's serial chain: only this chain settles the unit or
   * changes its target, so it is current (and settle() re-checks that the unit is still open).
   */
  async validate(wu: WorkUnitRecord) {
    const { store, scheduler, now } = this.ctx;
    const job = await this.jobFacts(wu.jobId);
    if (!job || wu.state !== 'open') {
      this.escalations.end(wu.id);
      return;
    }
    const escalated = this.escalations.get(wu.id);
    const found = await this.quorumOf(wu, job.replication, escalated?.quorum ?? job.replication);
    if (found === 'replicate') {
      // Adaptive replication: the lone result's host is not trusted enough to stand alone.
      await store.raiseTarget(wu.id, job.replication);
      await scheduler.dispatch();
      return;
    }
    if ('winners' in found) {
      const { winners, losers } = found;
      // An escalated unit is not drawn again: its extra replicas are its check.
      const checked = escalated ? 'settle' : await this.audit(wu, job.replication, found);
      if (checked === 'forged') return this.forgedQuorum(wu, winners);
      if (checked === 'escalated') return scheduler.dispatch();
      if (escalated) this.escalationOver(wu, escalated, winners);
      const outcome = await store.settle({
        wuId: wu.id,
        canonicalResultId: winners[0].id,
        valid: winners.map((r) => r.id),
        invalid: losers.map((r) => r.id),
        credits: winners.map((r) => ({ volunteerId: r.volunteerId, amount: wu.flops })),
        now: now(),
      });
      await this.settled(
        wu,
        outcome,
        winners.map((r) => r.volunteerId),
        losers.map((r) => r.volunteerId),
      );
    } else if (found.live >= wu.target) {
      // Everyone asked has answered and no quorum agrees: ask one more, up to the cap.
      if (wu.target < maxReplicas(job.replication)) {
        await store.raiseTarget(wu.id, Math.max(wu.target + 1, job.replication));
      } else {
        this.escalations.end(wu.id);
        await store.failWorkUnit(wu.id, `no ${escalated?.quorum ?? job.replication} of ${found.live} results agreed`, now());
        await scheduler.cancelLeases((l) => l.jobId === job.id, 'job failed');
      }
    }
    await scheduler.dispatch();
  }

  /**
   * The coordinator's audit of a quorum before it settles (audit.ts): 'settle' when it is not drawn
   * or the recomputation agrees, 'forged' when it disagrees, 'escalated' when it was drawn but not
   * recomputed here and its unit now wants one more replica from outside the quorum (escalation.ts).
   */
  private async audit(wu: WorkUnitRecord, replication: number, { winners, losers }: Quorum): Promise<'settle' | 'forged' | 'escalated'> {
    const { store, log, scheduler } = this.ctx;
    const backers = winners.map((r) => r.volunteerId);
    const queue = await this.audits.draw(wu, backers);
    if (!queue) return 'settle';
    // It waits its turn holding no result bytes; it reads the canonical one then.
    const verdict = await this.audits.audit(wu, winners[0].id, queue);
    if (verdict === 'agrees') return 'settle';
    if (verdict === 'forged') return 'forged';
    // A long wait may have ended with the unit closed (its round, its job): nothing to escalate.
    if (verdict === 'none' && (await store.getWorkUnit(wu.id))?.state !== 'open') return 'settle';
    const why = verdict === 'none' ? 'no verdict' : verdict;
    const live = winners.length + losers.length;
    // Nobody to ask (a grid of two laptops; replicas at their cap): waiting would stall the job for good.
    let cannot: string | null = null;
    if (live + 1 > maxReplicas(replication)) cannot = 'its replicas are at their cap';
    else if (!scheduler.hasOnlineOutside(backers, wu.kind)) cannot = 'no identity outside its quorum is connected';
    if (cannot) {
      this.audits.stats.skipped++;
      log(`audit of ${wu.id} drawn (${queue}) but not run (${why}), and ${cannot}: it settles as its quorum of ${winners.length} says`);
      return 'settle';
    }
    const { quorum } = this.escalations.add(wu.id, winners.map((r) => r.id));
    await store.raiseTarget(wu.id, Math.max(wu.target, live + 1));
    this.audits.stats.escalated++;
    log(`audit of ${wu.id} drawn (${queue}) but not run (${why}): escalated, one more replica asked from outside its quorum; it settles once ${quorum} results agree`);
    return 'escalated';
  }

  /** An escalated unit is about to settle: outvoted when none of its escalated quorum is among the winners. */
  private escalationOver(wu: WorkUnitRecord, escalated: Escalation, winners: Backer[]) {
    this.escalations.end(wu.id);
    if (winners.some((r) => escalated.backers.includes(r.id))) return;
    this.audits.stats.outvoted++;
    this.ctx.log(`escalated ${wu.id}: ${winners.length} results from outside its quorum outvoted the ${escalated.backers.length} it had; those are invalid`);
  }

  /**
   * The unit's live results that agree as a group of at least `quorum` (the first is canonical) and
   * the rest; how many are live when none agree; 'replicate' when a lone result's host must be
   * replicated first. Ids only: the result bytes are not kept while the unit waits for an audit.
   */
  private async quorumOf(wu: WorkUnitRecord, replication: number, quorum: number): Promise<Quorum | { live: number } | 'replicate'> {
    const live = await this.ctx.store.liveResults(wu.id);
    const kind = jobKind(wu.kind);
    let group: string[] | null;
    if (wu.target === 1 && replication > 1 && live.length === 1) {
      // Adaptive replication: one checked result from a trusted host may stand alone.
      const trust = await this.ctx.store.getTrust(live[0].volunteerId);
      if (shouldReplicate(trust, this.ctx.trustPolicy ?? DEFAULT_TRUST_POLICY)) return 'replicate';
      group = [live[0].id];
    } else {
      group = findQuorum(
        live.map((r) => ({ id: r.id, values: asFloat32(r.data) })),
        quorum,
        kind?.agree ? (x, y) => kind.agree!(wu, x, y) : wu.tolerance,
      );
    }
    if (!group) return { live: live.length };
    const backer = (r: { id: string; volunteerId: string }): Backer => ({ id: r.id, volunteerId: r.volunteerId });
    // In the group's order: its anchor (the canonical result) first.
    const winners = group.map((id) => backer(live.find((r) => r.id === id)!));
    const losers = live.filter((r) => !group.includes(r.id)).map(backer);
    return { winners, losers };
  }

  /**
   * The audit recomputed the unit and its quorum's result is wrong: the quorum's results are
   * invalid, every identity that backed it is struck (suspended, its unconfirmed credit revoked),
   * every earlier quorum formed only by them is revoked too (credit reversed, unit recomputed
   * unless its round has closed), and the unit stays open wanting fresh replicas. Results that
   * disagreed with the quorum stay live.
   */
  private async forgedQuorum(wu: WorkUnitRecord, winners: Backer[]) {
    const { store, scheduler, log } = this.ctx;
    await store.rejectResults(
      wu.id,
      winners.map((r) => r.id),
      "the coordinator's audit recomputed the unit and disagrees",
    );
    log(`audit of ${wu.id}: the result ${winners.length} volunteers agreed on is wrong; the unit is computed again`);
    for (const r of winners) await this.strike(r.volunteerId, `backed a result for ${wu.id} that failed the coordinator's audit`);
    // They colluded once: nothing they agreed on among themselves counts as confirmed by a replica.
    const earlier = await store.quorumsAmong(winners.map((r) => r.volunteerId));
    if (earlier.length) {
      const revoked = await store.revokeResults({ resultIds: earlier.map((r) => r.id), reason: 'its quorum was only identities an audit caught colluding', now: this.ctx.now() });
      log(`revoked ${earlier.length} results of quorums formed only by ${winners.map((r) => r.volunteerId).join(', ')}; their units are recomputed`);
      this.sendCredits(revoked);
    }
    await scheduler.dispatch();
  }

  /** After a unit settled: receipts out, trust for its quorum and its dissenters, leftover replicas cancelled. */
  async settled(wu: WorkUnitRecord, outcome: SettlementOutcome, winners: string[], losers: string[]) {
    const { scheduler, now } = this.ctx;
    this.sendCredits(outcome);
    // Not awaited: a winner's trust only grows, so the ack need not wait for it to reach the disk
    // (lost in a crash, the volunteer is trusted a little less, never more), and the settlement's
    // receipts and records are not held for one more commit (the GC promoted ~7% less per unit).
    for (const id of winners) {
      this.updateTrust(id, (t) => afterValid(t, now(), winners.length > 1)).catch((err: Error) => this.ctx.log(`trust of ${id} not stored: ${err.message}`));
    }
    for (const id of losers) {
      const { before } = await this.updateTrust(id, afterDisagreement);
      await this.revokeUnconfirmed(id, before.verifiedAt, 'its host later disagreed with a quorum');
    }
    await scheduler.cancelUnitLeases(wu.id, 'work unit settled');
    if (Rounds.iterativeKindOf(wu.kind)) await this.closeRoundOf(wu.jobId);
    else if (outcome.jobComplete) await this.assimilate(outcome.jobId);
  }

  /** An iterative job's unit settled: its round may close. A round that cannot be closed fails the job, loudly. */
  private async closeRoundOf(jobId: string) {
    try {
      await this.rounds.unitSettled(jobId);
    } catch (err) {
      this.ctx.log(`job ${jobId}: closing its round failed: ${(err as Error).message}`);
      await this.ctx.store.failJob(jobId, `closing a round failed: ${(err as Error).message}`, this.ctx.now());
      await this.ctx.scheduler.cancelLeases((l) => l.jobId === jobId, 'job failed');
    }
  }

  /** Tells each credited (or debited) volunteer, with the sealed ledger entry as its receipt. */
  private sendCredits({ entries, balances }: Credited) {
    for (const receipt of entries) {
      const e = receipt.entry;
      this.ctx.scheduler.sendTo(e.volunteerId, { type: 'credit', wuId: e.wuId, amount: e.amount, total: balances[e.volunteerId] ?? 0, ledgerSeq: e.seq, receipt });
    }
  }

  private updateTrust(volunteerId: string, change: (t: TrustRecord) => TrustRecord) {
    return this.ctx.store.updateTrust(volunteerId, change);
  }

  /** A certainly-wrong or forged submission: suspend the identity and take back what it got unconfirmed. */
  async strike(volunteerId: string, why: string) {
    const { now, log } = this.ctx;
    const { before, after } = await this.updateTrust(volunteerId, (t) => afterStrike(t, now(), this.ctx.trustPolicy ?? DEFAULT_TRUST_POLICY));
    log(`volunteer ${volunteerId} ${why}: suspended until ${new Date(after.suspendedUntil).toISOString()} (strike ${after.strikes})`);
    await this.revokeUnconfirmed(volunteerId, before.verifiedAt, `its host later ${why}`);
    if (after.suspendedUntil > now()) this.ctx.disconnect?.(volunteerId, `suspended: ${why}`);
  }

  /** Re-queues the identity's results that no replica confirmed since `since`, reversing their credit. */
  private async revokeUnconfirmed(volunteerId: string, since: number, reason: string) {
    const { store, now } = this.ctx;
    const suspect = await store.unreplicatedResults(volunteerId, since);
    if (suspect.length === 0) return;
    const revoked = await store.revokeResults({
      resultIds: suspect.map((r) => r.id),
      reason,
      now: now(),
    });
    this.ctx.log(`revoked ${suspect.length} unconfirmed results of ${volunteerId}; their units are recomputed`);
    this.sendCredits(revoked);
  }

  private async assimilate(jobId: string) {
    const { store, shards, now, log } = this.ctx;
    const job = await store.getJob(jobId);
    const kind = job && jobKind(job.kind);
    if (!job || !kind) return;
    if (kind.iterative) return this.closeRoundOf(jobId); // made round by round, never assembled at once
    try {
      const outputs = (await store.canonicalOutputs(jobId)).map(({ wu, data }) => ({ wu, output: asFloat32(data) }));
      const sha = await shards.put(kind.assimilate(job, outputs));
      await store.setJobResult(jobId, sha, now());
      log(`job ${jobId} done: result ${sha}`);
    } catch (err) {
      await store.failJob(jobId, `assembling the result failed: ${(err as Error).message}`, now());
    }
  }
}
