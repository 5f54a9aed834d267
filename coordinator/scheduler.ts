// Hands work units to connected workers. Each unit goes to `target` distinct identities; a lease
// has a deadline, and a missed deadline or a disconnect puts the replica back in the queue.
import type { ServerMessage, WorkUnitSpec } from './protocol.js';
import type { LeaseRecord, Store, WorkUnitRecord } from './store.js';
import type { Tracker } from './tracker.js';

/** A unit at the head of a worker's queue is passed over for locality at most this many times. */
export const MAX_LOCALITY_SKIPS = 8;

/** One connected worker (a WebSocket today; anything that can send a ServerMessage). */
export interface WorkerSession {
  readonly volunteerId: string;
  /** How many leases the worker wants at once. */
  slots: number;
  /** Its active leases by id. */
  readonly leases: Map<string, LeaseInfo>;
  /** Its id in the peer-to-peer swarm, when it has one. */
  readonly peerId?: string;
  send(msg: ServerMessage): void;
}

export interface LeaseInfo {
  wuId: string;
  jobId: string;
  deadline: number;
}

export interface SchedulerOptions {
  leaseMs: number;
  now?: () => number;
  /** The swarm's tracker: shard locality when choosing units, peers to fetch them from. */
  tracker?: Tracker;
}

export function toWorkUnitSpec(wu: WorkUnitRecord): WorkUnitSpec {
  // The job kind wrote params in its own WorkUnitSpec shape when it planned the unit.
  return {
    id: wu.id,
    jobId: wu.jobId,
    kind: wu.kind,
    params: wu.params,
    inputs: wu.inputs,
    outputBytes: wu.outputBytes,
    flops: wu.flops,
  } as WorkUnitSpec;
}

export class Scheduler {
  readonly sessions = new Set<WorkerSession>();
  private dispatching: Promise<void> | null = null;
  private again = false;
  private readonly now: () => number;
  /** Times each unit was passed over at the head of a worker's queue in favour of locality. */
  private readonly skips = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly opts: SchedulerOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  add(session: WorkerSession) {
    this.sessions.add(session);
  }

  /** A worker left: its leases go back to the queue at once. */
  async remove(session: WorkerSession) {
    this.sessions.delete(session);
    const ids = [...session.leases.keys()];
    session.leases.clear();
    if (ids.length) await this.store.endLeases(ids, 'abandoned');
    await this.dispatch();
  }

  isOnline(volunteerId: string): boolean {
    for (const s of this.sessions) if (s.volunteerId === volunteerId) return true;
    return false;
  }

  sendTo(volunteerId: string, msg: ServerMessage) {
    for (const s of this.sessions) if (s.volunteerId === volunteerId) s.send(msg);
  }

  /** Fills every worker's free slots. Calls made while one runs are folded into one more pass. */
  dispatch(): Promise<void> {
    if (this.dispatching) {
      this.again = true;
      return this.dispatching;
    }
    this.dispatching = (async () => {
      try {
        do {
          this.again = false;
          await this.fillOnce();
        } while (this.again);
      } finally {
        this.dispatching = null;
      }
    })();
    return this.dispatching;
  }

  /** Round-robin, one lease per worker per pass, so work spreads across workers. */
  private async fillOnce() {
    let progress = true;
    while (progress) {
      progress = false;
      for (const s of [...this.sessions]) {
        if (!this.sessions.has(s) || s.leases.size >= s.slots) continue;
        const now = this.now();
        const got = await this.store.leaseNext(s.volunteerId, now, now + this.opts.leaseMs, this.chooser(s));
        if (!got) continue;
        if (!this.sessions.has(s)) {
          await this.store.endLeases([got.lease.id], 'abandoned'); // left while we leased
          continue;
        }
        this.issue(s, got.lease, got.wu);
        progress = true;
      }
    }
  }

  /**
   * Locality: prefer a unit whose input shards the worker already holds (or is fetching), among
   * the first candidates in queue order. The head of the queue is passed over at most
   * MAX_LOCALITY_SKIPS times, so locality never starves a unit.
   */
  private chooser(s: WorkerSession) {
    const tracker = this.opts.tracker;
    const peerId = s.peerId;
    if (!tracker || !peerId) return undefined;
    return (candidates: WorkUnitRecord[]) => {
      const head = candidates[0];
      if ((this.skips.get(head.id) ?? 0) >= MAX_LOCALITY_SKIPS) return head;
      let best = head;
      let bestScore = tracker.locality(peerId, Object.values(head.inputs));
      for (const wu of candidates.slice(1)) {
        const score = tracker.locality(peerId, Object.values(wu.inputs));
        if (score > bestScore) [best, bestScore] = [wu, score];
      }
      if (best !== head) this.skips.set(head.id, (this.skips.get(head.id) ?? 0) + 1);
      return best;
    };
  }

  private issue(s: WorkerSession, lease: LeaseRecord, wu: WorkUnitRecord) {
    this.skips.delete(wu.id); // the bound counts per replica
    s.leases.set(lease.id, { wuId: wu.id, jobId: wu.jobId, deadline: lease.deadline });
    const shas = Object.values(wu.inputs);
    const tracker = this.opts.tracker;
    const peers = tracker && s.peerId ? tracker.recommend(shas, s.peerId) : undefined;
    if (tracker && s.peerId) tracker.expect(s.peerId, shas);
    s.send({ type: 'assign', lease: { id: lease.id, deadline: lease.deadline }, wu: toWorkUnitSpec(wu), peers });
  }

  /** Expires overdue leases (their replicas are re-queued) and tells their workers. */
  async tick() {
    const now = this.now();
    const expired = await this.store.expireLeases(now);
    for (const s of this.sessions) {
      for (const [id, { deadline }] of s.leases) {
        if (deadline < now) {
          s.leases.delete(id);
          s.send({ type: 'lease-cancelled', leaseId: id, reason: 'deadline passed' });
        }
      }
    }
    if (expired > 0) await this.dispatch();
  }

  /** Called when a unit settles or its job fails: replicas still out are no longer needed. */
  async cancelLeases(which: (lease: LeaseInfo) => boolean, reason: string) {
    const ended: string[] = [];
    for (const s of this.sessions) {
      for (const [id, info] of [...s.leases]) {
        if (which(info)) {
          s.leases.delete(id);
          ended.push(id);
          s.send({ type: 'lease-cancelled', leaseId: id, reason });
        }
      }
    }
    if (ended.length) await this.store.endLeases(ended, 'abandoned');
  }

  /** The worker returned or gave up a lease. */
  release(session: WorkerSession, leaseId: string) {
    session.leases.delete(leaseId);
  }
}
