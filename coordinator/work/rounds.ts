// Rounds of iterative jobs (jobs/types.ts IterativeKind: training). A round's units are ordinary
// units; this module only decides when a round closes and commits the next one:
//
//   A round closes when every one of its units is validated, or — stragglers — once `quorum` of
//   them are validated and `graceMs` has passed since the quorum was reached. Its still-open units
//   are then dropped: their leases are cancelled and their late results are refused ("work unit is
//   no longer wanted"), so they earn nothing.
//
// Closing is idempotent: the kind computes the next round deterministically from the round's
// canonical outputs, and the store commits it (next meta, next units, or the job's result) in one
// transaction only if the job still names the round being closed. A coordinator killed mid-round
// resumes from the store at start-up (`resume`): settled units stay settled, a round whose units
// were all settled before the crash is closed then, and one with a quorum gets its grace again.
import { jobKind, jobKinds } from '../jobs/index.js';
import type { IterativeKind } from '../jobs/types.js';
import type { JobRecord, Store } from '../store/store.js';
import type { ShardStore } from '../store/shards.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import type { Scheduler } from './scheduler.js';

export interface RoundsContext {
  store: Store;
  shards: ShardStore;
  scheduler: Scheduler;
  now: () => number;
  log: (msg: string) => void;
}

function asFloat32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

export class Rounds {
  /** One close at a time per job: a timer and a settling unit never close the same round together. */
  private readonly jobs = new KeyedQueue();
  /** Grace timers of rounds whose quorum is in, by job id, with the round they are for. */
  private readonly timers = new Map<string, { round: number; timer: ReturnType<typeof setTimeout> }>();

  constructor(private readonly ctx: RoundsContext) {}

  static iterativeKindOf(kind: string): IterativeKind | null {
    return jobKind(kind)?.iterative ?? null;
  }

  /** A unit of an iterative job settled (or the coordinator started): close its round if it may. */
  unitSettled(jobId: string): Promise<void> {
    return this.jobs.run(jobId, () => this.maybeClose(jobId, null));
  }

  /** At start-up: every running iterative job's round is looked at again (see the header). */
  async resume(): Promise<number> {
    const kinds = Object.values(jobKinds).filter((k) => k.iterative).map((k) => k.kind);
    const jobs = await this.ctx.store.activeJobsOfKinds(kinds);
    for (const job of jobs) await this.unitSettled(job.id);
    return jobs.length;
  }

  /** Stops the grace timers (the coordinator is closing). */
  stop() {
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** `graceOverFor`: the round whose grace timer fired, if that is why we are here. */
  private async maybeClose(jobId: string, graceOverFor: number | null) {
    const { store, shards, scheduler, now, log } = this.ctx;
    const job = await store.getJob(jobId);
    const it = job && Rounds.iterativeKindOf(job.kind);
    if (!job || !it || (job.state !== 'running' && job.state !== 'queued')) return this.disarm(jobId);
    const info = it.roundInfo(job);
    if (info.round >= info.rounds) return this.disarm(jobId);
    // Counted without the outputs (a Δ is as big as the model); read with them only to close.
    const counted = await store.unitRange(jobId, info.firstIdx, info.firstIdx + info.units);
    const open = counted.filter((u) => u.wu.state === 'open');
    if (open.length > 0) {
      if (counted.filter((u) => u.wu.state === 'done').length < info.quorum) return;
      const graceOver = graceOverFor === info.round || info.graceMs <= 0;
      if (!graceOver) return this.arm(job, info.round, info.graceMs);
    }
    this.disarm(jobId);
    const settled = (await store.unitRange(jobId, info.firstIdx, info.firstIdx + info.units, true)).filter((u) => u.wu.state === 'done' && u.data);
    const outcome = await it.closeRound(
      job,
      settled.map((u) => ({ wu: u.wu, output: asFloat32(u.data!), results: u.results })),
      shards,
      now(),
    );
    const result = outcome.result ? { sha256: await shards.put(outcome.result) } : null;
    // Still open now (read again with the outputs): a unit that settled meanwhile is aggregated, not dropped.
    const drop = counted.filter((u) => u.wu.state === 'open').map((u) => u.wu.id).filter((id) => !settled.some((u) => u.wu.id === id));
    const advanced = await store.advanceRound({
      jobId,
      round: info.round,
      meta: outcome.meta,
      drop,
      units: outcome.workUnits.map((u, i) => {
        const idx = info.firstIdx + info.units + i;
        return { ...u, id: `${jobId}.${idx}`, jobId, idx, kind: job.kind, target: job.replication };
      }),
      result,
      now: now(),
    });
    if (!advanced) return; // closed already (by a concurrent coordinator, or before a crash)
    log(`job ${jobId}: ${outcome.summary}${drop.length ? ` (${drop.length} stragglers dropped)` : ''}${result ? `; done: result ${result.sha256}` : ''}`);
    if (drop.length) {
      const dropped = new Set(drop);
      await scheduler.cancelLeases((l) => dropped.has(l.wuId), 'its training round closed without it');
    }
    await scheduler.dispatch();
  }

  private arm(job: JobRecord, round: number, graceMs: number) {
    const have = this.timers.get(job.id);
    if (have?.round === round) return;
    if (have) clearTimeout(have.timer);
    const timer = setTimeout(() => {
      this.timers.delete(job.id);
      this.jobs.run(job.id, () => this.maybeClose(job.id, round)).catch((err: Error) => this.ctx.log(`job ${job.id}: closing round ${round + 1} failed: ${err.message}`));
    }, graceMs);
    timer.unref?.();
    this.timers.set(job.id, { round, timer });
  }

  private disarm(jobId: string) {
    const have = this.timers.get(jobId);
    if (have) clearTimeout(have.timer);
    this.timers.delete(jobId);
  }
}
