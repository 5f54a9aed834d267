// Result intake and validation: a returned result is checked (lease, size, hash, signature, the
// job kind's cheap independent check), stored, and compared with the unit's other replicas. A quorum
// that agrees makes the result canonical and earns its volunteers credit in the sealed ledger.
// With adaptive replication (trust.ts) a unit starts wanting one result: a trusted host's result
// that passes the check may settle it alone; anyone else's makes the unit ask for `replication`.
// Forged, mis-addressed or failing results are strikes: suspension and revocation (trust.ts).
import { timeOrderedId } from '../util/ids.js';
import { jobKind } from '../jobs/index.js';
import { verifyOffThread } from './signature-thread.js';
import { resultBatchSigningMessage, resultSigningMessage, type ResultBatchHeader, type ResultHeader } from '../protocol/index.js';
import type { Scheduler, WorkerSession } from './scheduler.js';
import { sha256Hex, type ShardStore } from '../store/shards.js';
import type { Credited, SettlementOutcome, Store, WorkUnitRecord } from '../store/store.js';
import { afterDisagreement, afterStrike, afterValid, DEFAULT_TRUST_POLICY, shouldReplicate, type TrustPolicy, type TrustRecord } from './trust.js';
import { KeyedSerial } from '../util/keyed-queue.js';
import { findQuorum } from '../jobs/compare.js';

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

export type Verdict = { accepted: true } | { accepted: false; reason: string };

/** At most this many replicas of one unit before it is declared failed. */
export function maxReplicas(replication: number): number {
  return Math.min(8, 2 * replication + 1);
}

function asFloat32(bytes: Uint8Array): Float32Array {
  // Copy: the bytes may sit at an offset that is not a multiple of 4.
  return new Float32Array(bytes.slice().buffer);
}

export class ResultIntake {
  /**
   * Results of one unit are handled one at a time, so two replicas arriving together cannot both
   * settle it; different units proceed concurrently (and their writes share commits).
   */
  private readonly units = new KeyedSerial();

  constructor(private readonly ctx: ResultContext) {}

  private serial<T>(wuId: string, fn: () => Promise<T>): Promise<T> {
    return this.units.run(wuId, fn);
  }

  submit(session: WorkerSession, header: ResultHeader, payload: Uint8Array): Promise<Verdict> {
    const signed = (wuId: string, sha: string) => this.verifiedBy(session.volunteerId, resultSigningMessage(wuId, sha), header.signature);
    return this.serial(header.wuId, () => this.accept(session, header, payload, signed));
  }

  /**
   * A batch of results under one signature: the signature is checked once, then every item goes
   * through the same intake as a single result (lease, state, size, hash, the kind's check, quorum,
   * credit), concurrently like results arriving together. A bad signature is one strike, the
   * sender's leases named in the batch are given up, and every item is refused.
   */
  async submitBatch(session: WorkerSession, header: ResultBatchHeader, payloads: Uint8Array[]): Promise<Verdict[]> {
    const { store, scheduler } = this.ctx;
    if (!(await this.verifiedBy(session.volunteerId, resultBatchSigningMessage(header.items), header.signature))) {
      const own = header.items.filter((i) => session.leases.get(i.leaseId)?.wuId === i.wuId).map((i) => i.leaseId);
      for (const id of own) scheduler.release(session, id);
      if (own.length) await store.endLeases(own, 'abandoned');
      await this.strike(session.volunteerId, 'sent a result batch with a bad signature');
      await scheduler.dispatch();
      return header.items.map(() => ({ accepted: false, reason: "batch signature does not verify with this volunteer's key" }));
    }
    // The batch signature covers every item's (wuId, sha256): each item's own check is that its sha256 is its bytes'.
    const signed = async () => true;
    return Promise.all(header.items.map((item, i) => this.serial(item.wuId, () => this.accept(session, item, payloads[i], signed))));
  }

  private async verifiedBy(volunteerId: string, message: Uint8Array, signature: string): Promise<boolean> {
    const key = await this.publicKeyOf(volunteerId);
    return key !== null && (await verifyOffThread(key, message, signature));
  }

  /** One result's intake; `signed` says whether the sender's signature covers (wuId, sha256). */
  private async accept(
    session: WorkerSession,
    header: Pick<ResultHeader, 'leaseId' | 'wuId' | 'sha256'>,
    payload: Uint8Array,
    signed: (wuId: string, sha: string) => Promise<boolean>,
  ): Promise<Verdict> {
    const { store, shards, scheduler } = this.ctx;
    const reject = (reason: string): Verdict => ({ accepted: false, reason });
    const lease = await store.getLease(header.leaseId);
    if (!lease || lease.volunteerId !== session.volunteerId || lease.wuId !== header.wuId) {
      // Lease ids are random and sent only to their holder: an honest worker never does this.
      await this.strike(session.volunteerId, 'submitted a result for a work unit not leased to it');
      return reject('no such lease for this volunteer and work unit');
    }
    // 'expired': the worker vanished or ran late; its result is still checked and may still count.
    if (lease.state !== 'active' && lease.state !== 'expired') {
      return reject(`lease is ${lease.state}; its result is no longer wanted`);
    }
    scheduler.release(session, lease.id);
    void scheduler.dispatch(); // the freed slot is refilled in the same commit as this result
    const wu = await store.getWorkUnit(lease.wuId);
    if (!wu || wu.state !== 'open') {
      await store.endLeases([lease.id], 'returned');
      return reject('work unit is already settled');
    }
    if (payload.length !== wu.outputBytes) {
      await store.endLeases([lease.id], 'abandoned');
      await this.strike(session.volunteerId, 'sent a result of the wrong size');
      await scheduler.dispatch();
      return reject(`result is ${payload.length} bytes; this work unit's output is ${wu.outputBytes} bytes`);
    }
    const sha = sha256Hex(payload);
    if (sha !== header.sha256) {
      await store.endLeases([lease.id], 'abandoned');
      await this.strike(session.volunteerId, 'sent a result whose sha256 does not match');
      await scheduler.dispatch();
      return reject('sha256 does not match the result bytes');
    }
    if (!(await signed(wu.id, sha))) {
      await store.endLeases([lease.id], 'abandoned');
      await this.strike(session.volunteerId, 'sent a result with a bad signature');
      await scheduler.dispatch();
      return reject("signature does not verify with this volunteer's key");
    }
    const values = asFloat32(payload);
    const kind = jobKind(wu.kind);
    const passed = kind ? await kind.check(wu, values, shards) : false;
    const record = {
      id: timeOrderedId('r_'),
      wuId: wu.id,
      leaseId: lease.id,
      volunteerId: session.volunteerId,
      sha256: sha,
      state: passed ? 'pending' : 'invalid',
      receivedAt: this.ctx.now(),
      reason: passed ? null : 'failed the independent check',
      data: payload,
    } as const;
    if (passed && (await this.standsAlone(wu))) {
      // One write stores, settles and credits it (unless something else of the unit is live after all).
      const added = await store.addSoleResult(record, { amount: wu.flops, now: this.ctx.now() });
      if (!added) return reject('this volunteer already returned a result for this work unit');
      if (added.outcome) await this.settled(wu, added.outcome, [session.volunteerId], []);
      else await this.validate(wu);
      return { accepted: true };
    }
    const stored = await store.addResult(record);
    if (!stored) return reject('this volunteer already returned a result for this work unit');
    if (!passed) {
      await this.strike(session.volunteerId, `result for ${wu.id} failed the independent check`);
      await scheduler.dispatch();
      return reject('result failed verification');
    }
    await this.validate(wu);
    return { accepted: true };
  }

  /** A checked result of a replication-1 job's unit settles it by itself. */
  private async standsAlone(wu: WorkUnitRecord): Promise<boolean> {
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

  /** Volunteer keys never change (the id is derived from the key): look each one up once. */
  private readonly keys = new Map<string, string>();

  private async publicKeyOf(volunteerId: string): Promise<string | null> {
    const hit = this.keys.get(volunteerId);
    if (hit) return hit;
    const volunteer = await this.ctx.store.getVolunteer(volunteerId);
    if (!volunteer) return null;
    if (this.keys.size >= 100_000) this.keys.clear();
    this.keys.set(volunteerId, volunteer.publicKey);
    return volunteer.publicKey;
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
    return { validated: unitsToValidate.length, assembled: jobsToAssemble.length };
  }

  /**
   * Looks for a quorum among the unit's live results; settles, asks for more, or fails it. `wu` is
   * as read just before, inside this unit's serial chain: only this chain settles the unit or
   * changes its target, so it is current (and settle() re-checks that the unit is still open).
   */
  private async validate(wu: WorkUnitRecord) {
    const { store, scheduler, now } = this.ctx;
    const job = await this.jobFacts(wu.jobId);
    if (!job || wu.state !== 'open') return;
    const live = await store.liveResults(wu.id);
    const kind = jobKind(wu.kind);
    let group: string[] | null;
    if (wu.target === 1 && job.replication > 1 && live.length === 1) {
      // Adaptive replication: one checked result from a trusted host may stand alone.
      const trust = await store.getTrust(live[0].volunteerId);
      if (shouldReplicate(trust, this.ctx.trustPolicy ?? DEFAULT_TRUST_POLICY)) {
        await store.raiseTarget(wu.id, job.replication);
        await scheduler.dispatch();
        return;
      }
      group = [live[0].id];
    } else {
      group = findQuorum(
        live.map((r) => ({ id: r.id, values: asFloat32(r.data) })),
        job.replication,
        kind?.agree ? (x, y) => kind.agree!(wu, x, y) : wu.tolerance,
      );
    }
    if (group) {
      const agreeing = new Set(group);
      const winners = live.filter((r) => agreeing.has(r.id));
      const losers = live.filter((r) => !agreeing.has(r.id));
      const outcome = await store.settle({
        wuId: wu.id,
        canonicalResultId: group[0],
        valid: group,
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
    } else if (live.length >= wu.target) {
      // Everyone asked has answered and no quorum agrees: ask one more, up to the cap.
      if (wu.target < maxReplicas(job.replication)) {
        await store.raiseTarget(wu.id, Math.max(wu.target + 1, job.replication));
      } else {
        await store.failWorkUnit(wu.id, `no ${job.replication} of ${live.length} results agreed`, now());
        await scheduler.cancelLeases((l) => l.jobId === job.id, 'job failed');
      }
    }
    await scheduler.dispatch();
  }

  /** After a unit settled: receipts out, trust for its quorum and its dissenters, leftover replicas cancelled. */
  private async settled(wu: WorkUnitRecord, outcome: SettlementOutcome, winners: string[], losers: string[]) {
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
    if (outcome.jobComplete) await this.assimilate(outcome.jobId);
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
  private async strike(volunteerId: string, why: string) {
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
