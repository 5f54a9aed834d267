// Hands work units to connected workers. Each unit goes to `target` distinct identities; a lease
// has a hard deadline and a heartbeat: a missed deadline, a disconnect or a worker that stops
// answering pings (see worker-socket.ts) puts the replica back in the queue within a bounded time.
import { undeclaredWorkerKinds } from '../jobs/index.js';
import type { ServerMessage, WorkUnitSpec } from '../protocol/index.js';
import type { LeaseRecord, Store, WorkUnitRecord } from '../store/store.js';
import type { Tracker } from '../swarm/tracker.js';

/** A unit at the head of a worker's queue is passed over for locality at most this many times. */
export const MAX_LOCALITY_SKIPS = 8;

/** One connected worker (a WebSocket today; anything that can send a ServerMessage). */
export interface WorkerSession {
  readonly volunteerId: string;
  /** How many leases the worker wants at once. */
  slots: number;
  /** Its active leases by id. */
  readonly leases: Map<string, LeaseInfo>;
  /** Job kinds it can run (from its DeviceInfo); undefined: every kind that is not opt-in. */
  readonly kinds?: readonly string[];
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
  /**
   * How long a lease stays alive in the store without a heartbeat from this coordinator. Matters
   * when several coordinators share a store: one that crashes stops renewing, and its leases lapse.
   */
  livenessMs?: number;
  now?: () => number;
  /** The swarm's tracker: shard locality when choosing units, peers to fetch them from. */
  tracker?: Tracker;
  /** Where a failed pass is reported (the store refused a write): its workers are asked again on the next tick. */
  log?: (msg: string) => void;
}

export function toWorkUnitSpec(wu: WorkUnitRecord): WorkUnitSpec {
  return {
    id: wu.id,
    jobId: wu.jobId,
    kind: wu.kind,
    params: wu.params,
    inputs: wu.inputs,
    outputBytes: wu.outputBytes,
    flops: wu.flops,
  } as WorkUnitSpec; // the job kind that planned the unit made params match its kind
}

export class Scheduler {
  readonly sessions = new Set<WorkerSession>();
  /** Sessions by volunteer id (one volunteer may have several tabs). */
  private readonly byVolunteer = new Map<string, Set<WorkerSession>>();
  /** Which session holds each outstanding lease of a unit, so settling one cancels the rest in O(1). */
  private readonly byUnit = new Map<string, Map<string, WorkerSession>>();
  /** Sessions with a free slot: only these are offered work, so a pass costs O(hungry), not O(all). */
  private readonly hungry = new Set<WorkerSession>();
  /**
   * Hungry workers that found nothing, with the store's workVersion at that moment: they are asked
   * again only once it changes (or on the next tick), so a thousand idle workers cost nothing per
   * result that comes in.
   */
  private readonly starved = new Map<WorkerSession, number>();
  private dispatching: Promise<void> | null = null;
  private again = false;
  private readonly now: () => number;
  private readonly livenessMs: number;
  /** Times each unit was passed over at the head of a worker's queue in favour of locality. */
  private readonly skips = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly opts: SchedulerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.livenessMs = opts.livenessMs ?? opts.leaseMs;
  }

  add(session: WorkerSession) {
    this.sessions.add(session);
    let set = this.byVolunteer.get(session.volunteerId);
    if (!set) this.byVolunteer.set(session.volunteerId, (set = new Set()));
    set.add(session);
    this.refresh(session);
  }

  /** The worker changed its slots: offer it work if it has room. */
  refresh(session: WorkerSession) {
    if (this.sessions.has(session) && session.leases.size < session.slots) this.hungry.add(session);
    else this.hungry.delete(session);
  }

  /** Re-offers work to every worker that found none: the next dispatch asks for all of them. */
  wake() {
    this.starved.clear();
  }

  /** A worker left: its leases go back to the queue at once; a late result is still accepted. */
  async remove(session: WorkerSession) {
    this.sessions.delete(session);
    this.hungry.delete(session);
    this.starved.delete(session);
    const set = this.byVolunteer.get(session.volunteerId);
    set?.delete(session);
    if (set?.size === 0) this.byVolunteer.delete(session.volunteerId);
    const ids = [...session.leases.keys()];
    for (const [id, info] of session.leases) this.unindex(id, info.wuId);
    session.leases.clear();
    if (ids.length) await this.store.endLeases(ids, 'expired');
    await this.dispatch();
  }

  /** Identities with a worker connected to this coordinator. */
  onlineCount(): number {
    return this.byVolunteer.size;
  }

  isOnline(volunteerId: string): boolean {
    return this.byVolunteer.has(volunteerId);
  }

  /** Whether a worker of an identity not among `volunteerIds` is connected and runs `kind` (who could replicate a unit). */
  hasOnlineOutside(volunteerIds: readonly string[], kind: string): boolean {
    for (const [id, sessions] of this.byVolunteer) {
      if (volunteerIds.includes(id)) continue;
      for (const s of sessions) if ((s.kinds ?? undeclaredWorkerKinds).includes(kind)) return true;
    }
    return false;
  }

  sendTo(volunteerId: string, msg: ServerMessage) {
    for (const s of this.byVolunteer.get(volunteerId) ?? []) s.send(msg);
  }

  /**
   * Fills every worker's free slots. Calls made while one runs are folded into one more pass. Never
   * rejects: a pass that fails is logged and retried on the next tick.
   */
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
      } catch (err) {
        this.opts.log?.(`dispatch failed: ${(err as Error).message}`);
      } finally {
        this.dispatching = null;
      }
    })();
    return this.dispatching;
  }

  /**
   * Each pass asks for every hungry worker's free slots at once (the store commits them together),
   * so a pass costs one commit and one query per worker, not one per slot.
   */
  private async fillOnce() {
    const stale = (s: WorkerSession) => this.starved.get(s) !== this.store.workVersion;
    // Slots can shrink behind our back (a paused classroom room sets them to 0): re-check them.
    for (const s of this.hungry) this.refresh(s);
    let candidates = [...this.hungry].filter(stale);
    while (candidates.length) {
      const now = this.now();
      const version = this.store.workVersion;
      const wanted = candidates.map((s) => Math.max(1, s.slots - s.leases.size));
      const got = await Promise.all(
        candidates.map((s, i) =>
          this.store.leaseUnits({
            volunteerId: s.volunteerId,
            count: wanted[i],
            now,
            deadline: now + this.opts.leaseMs,
            choose: this.chooser(s),
            aliveUntil: now + this.livenessMs,
            kinds: s.kinds ?? undeclaredWorkerKinds,
          }),
        ),
      );
      const next: WorkerSession[] = [];
      const orphans: string[] = [];
      got.forEach((leased, i) => {
        const s = candidates[i];
        if (leased.length < wanted[i]) this.starved.set(s, version); // nothing more for this worker until the work changes
        else this.starved.delete(s);
        if (!this.sessions.has(s)) {
          orphans.push(...leased.map((g) => g.lease.id)); // left while we leased
          return;
        }
        for (const g of leased) this.issue(s, g.lease, g.wu);
        if (this.hungry.has(s) && leased.length === wanted[i]) next.push(s);
      });
      if (orphans.length) await this.store.endLeases(orphans, 'abandoned');
      candidates = next;
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
    // Nothing held or fetching: every score would be 0, so queue order it is (and a cheaper query).
    if (!tracker || !peerId || !tracker.hasShards(peerId)) return undefined;
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
    let holders = this.byUnit.get(wu.id);
    if (!holders) this.byUnit.set(wu.id, (holders = new Map()));
    holders.set(lease.id, s);
    this.refresh(s);
    const shas = Object.values(wu.inputs);
    const tracker = this.opts.tracker;
    const peers = tracker && s.peerId ? tracker.recommend(shas, s.peerId) : undefined;
    if (tracker && s.peerId) tracker.expect(s.peerId, shas);
    const assign: Extract<ServerMessage, { type: 'assign' }> = { type: 'assign', lease: { id: lease.id, deadline: lease.deadline }, wu: toWorkUnitSpec(wu) };
    if (peers && Object.keys(peers).length > 0) assign.peers = peers; // most assignments have no one to name
    s.send(assign);
  }

  private unindex(leaseId: string, wuId: string) {
    const holders = this.byUnit.get(wuId);
    holders?.delete(leaseId);
    if (holders?.size === 0) this.byUnit.delete(wuId);
  }

  private drop(s: WorkerSession, leaseId: string) {
    const info = s.leases.get(leaseId);
    if (!info) return;
    s.leases.delete(leaseId);
    this.unindex(leaseId, info.wuId);
    this.refresh(s);
  }

  /**
   * Runs every few seconds: renews the heartbeat of this coordinator's leases, expires overdue
   * ones (their replicas are re-queued) and tells their workers.
   */
  async tick() {
    const now = this.now();
    this.wake(); // whatever was missed (or done by another coordinator) is found at least this often
    await this.store.renewLeases(now + this.livenessMs);
    const expired = await this.store.expireLeases(now);
    for (const s of this.sessions) {
      for (const [id, { deadline }] of s.leases) {
        if (deadline < now) {
          this.drop(s, id);
          s.send({ type: 'lease-cancelled', leaseId: id, reason: 'deadline passed', stillAccepted: true });
        }
      }
    }
    // Leases another coordinator ended (a job cancelled or failed, a unit settled there).
    const held = new Map<string, WorkerSession>();
    for (const s of this.sessions) for (const id of s.leases.keys()) held.set(id, s);
    for (const { id, state } of held.size ? await this.store.endedLeases([...held.keys()]) : []) {
      const s = held.get(id)!;
      if (!s.leases.has(id)) continue; // ended here meanwhile
      this.drop(s, id);
      if (state === 'expired') s.send({ type: 'lease-cancelled', leaseId: id, reason: 'heartbeat lapsed', stillAccepted: true });
      else s.send({ type: 'lease-cancelled', leaseId: id, reason: 'no longer wanted (ended by another coordinator)' });
    }
    // With a shared store, other coordinators create work this one hears nothing about: look.
    if (expired > 0 || this.hungry.size > 0) await this.dispatch();
  }

  /** Called when a unit settles: replicas still out are no longer needed. */
  async cancelUnitLeases(wuId: string, reason: string) {
    const holders = this.byUnit.get(wuId);
    if (!holders) return;
    const ended = [...holders];
    for (const [id, s] of ended) {
      this.drop(s, id);
      s.send({ type: 'lease-cancelled', leaseId: id, reason });
    }
    await this.store.endLeases(
      ended.map(([id]) => id),
      'abandoned',
    );
  }

  /** Called when a job fails: every replica of it still out is no longer needed. */
  async cancelLeases(which: (lease: LeaseInfo) => boolean, reason: string) {
    const ended: string[] = [];
    for (const s of this.sessions) {
      for (const [id, info] of [...s.leases]) {
        if (which(info)) {
          this.drop(s, id);
          ended.push(id);
          s.send({ type: 'lease-cancelled', leaseId: id, reason });
        }
      }
    }
    if (ended.length) await this.store.endLeases(ended, 'abandoned');
  }

  /** The worker returned or gave up a lease. */
  release(session: WorkerSession, leaseId: string) {
    this.drop(session, leaseId);
  }
}
