// Result intake: a returned result is checked (lease, size, hash, signature, the job kind's cheap
// independent check) and stored, then handed to the validator (validator.ts) in its unit's chain.
// Forged, mis-addressed or failing results are strikes.
import { timeOrderedId } from '../util/ids.js';
import { jobKind } from '../jobs/index.js';
import { verifyOffThread } from './signature-thread.js';
import { resultBatchSigningMessage, resultSigningMessage, type ResultBatchHeader, type ResultHeader } from '../protocol/index.js';
import type { WorkerSession } from './scheduler.js';
import { sha256Hex } from '../store/shards.js';
import { asFloat32, Validator, type ResultContext } from './validator.js';

export type { ResultContext } from './validator.js';

export type Verdict = { accepted: true } | { accepted: false; reason: string };

export class ResultIntake {
  private readonly validator: Validator;

  constructor(private readonly ctx: ResultContext) {
    this.validator = new Validator(ctx);
  }

  private serial<T>(wuId: string, fn: () => Promise<T>): Promise<T> {
    return this.validator.serial(wuId, fn);
  }

  /** The audit's counts so far (audit.ts). */
  get auditStats() {
    return this.validator.audits.stats;
  }

  /** Finishes what a crash interrupted (see Validator.recover). */
  recover() {
    return this.validator.recover();
  }

  /** Stops timers (iterative jobs' round graces) when the coordinator closes. */
  stop() {
    this.validator.rounds.stop();
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
      await this.validator.strike(session.volunteerId, 'sent a result batch with a bad signature');
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
      await this.validator.strike(session.volunteerId, 'submitted a result for a work unit not leased to it');
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
      // 'dropped': a straggler of an iterative job's round that closed without it — it earns nothing.
      return reject(wu?.state === 'dropped' ? 'work unit is no longer wanted: its round closed without it' : 'work unit is already settled');
    }
    if (payload.length !== wu.outputBytes) {
      await store.endLeases([lease.id], 'abandoned');
      await this.validator.strike(session.volunteerId, 'sent a result of the wrong size');
      await scheduler.dispatch();
      return reject(`result is ${payload.length} bytes; this work unit's output is ${wu.outputBytes} bytes`);
    }
    const sha = sha256Hex(payload);
    if (sha !== header.sha256) {
      await store.endLeases([lease.id], 'abandoned');
      await this.validator.strike(session.volunteerId, 'sent a result whose sha256 does not match');
      await scheduler.dispatch();
      return reject('sha256 does not match the result bytes');
    }
    if (!(await signed(wu.id, sha))) {
      await store.endLeases([lease.id], 'abandoned');
      await this.validator.strike(session.volunteerId, 'sent a result with a bad signature');
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
    if (passed && (await this.validator.standsAlone(wu))) {
      // One write stores, settles and credits it (unless something else of the unit is live after all).
      const added = await store.addSoleResult(record, { amount: wu.flops, now: this.ctx.now() });
      if (!added) return reject('this volunteer already returned a result for this work unit');
      if (added.outcome) await this.validator.settled(wu, added.outcome, [session.volunteerId], []);
      else await this.validator.validate(wu);
      return { accepted: true };
    }
    const stored = await store.addResult(record);
    if (!stored) return reject('this volunteer already returned a result for this work unit');
    if (!passed) {
      await this.validator.strike(session.volunteerId, `result for ${wu.id} failed the independent check`);
      await scheduler.dispatch();
      return reject('result failed verification');
    }
    await this.validator.validate(wu);
    return { accepted: true };
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
}
