// Identities a stranger can mint: every hello with a fresh Ed25519 key stores a volunteer row, and
// per-address limits bound only the rate of hellos, not the total. Two bounds on the total: idle
// identities that never did anything are forgotten by a periodic sweep (Store.pruneVolunteers), and
// while the store holds the most unproven (uncredited) identities it may, a hello from an identity
// it does not know is refused — a known one always gets in. A forgotten identity leaves its rooms
// (the `forgotten` hook), so a throwaway member does not outlive its identity.
import type { Store } from '../store/store.js';

export interface IdentityLimits {
  /** An identity that never did anything is forgotten once unseen this long. */
  identityIdleMs: number;
  /** Stored identities without credit beyond which unknown identities are refused. */
  identitiesMaxUnproven: number;
}

/** 'known': stored already; 'new': may be stored; 'refused': the store holds as many unproven identities as it may. */
export type Admission = 'known' | 'new' | 'refused';

/** Rows one sweep's write deletes at most, and writes one sweep makes at most. */
const SWEEP_BATCH = 500;
const SWEEP_BATCHES = 10;
/** The longest time between sweeps (shorter when identities idle out sooner). */
const MAX_SWEEP_MS = 60_000;

export class Identities {
  /**
   * Stored uncredited identities: counted at start and after each sweep, plus those admitted since
   * (an over-count until the next sweep when some earn credit: never an under-count).
   */
  private unproven = 0;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<number> | null = null;

  constructor(
    private readonly store: Store,
    private readonly limits: IdentityLimits,
    /** The identities connected to this coordinator now (never forgotten). */
    private readonly connected: () => readonly string[],
    private readonly now: () => number = Date.now,
    private readonly log: (msg: string) => void = () => {},
    /** Called after a sweep that forgot some: what else refers to identities lets go of them (room memberships). */
    private readonly forgotten: () => Promise<unknown> = async () => undefined,
  ) {}

  /** Counts the stored identities and starts the periodic sweep (its timer does not hold the process open). */
  async start() {
    this.unproven = (await this.store.countVolunteers()).unproven;
    const every = Math.max(10, Math.min(MAX_SWEEP_MS, Math.floor(this.limits.identityIdleMs / 4)));
    this.timer = setInterval(() => void this.sweep().catch((err) => this.log(`identity sweep failed: ${err}`)), every);
    this.timer.unref();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Whether a hello from `volunteerId` (its signature verified) may go on; a 'new' one is counted. */
  async admit(volunteerId: string): Promise<Admission> {
    if (await this.store.getVolunteer(volunteerId)) return 'known';
    if (this.unproven >= this.limits.identitiesMaxUnproven) return 'refused';
    this.unproven++; // counted before it is stored, so hellos arriving together cannot overshoot
    return 'new';
  }

  /** Forgets idle identities that never did anything (a bounded number per sweep); returns how many. */
  sweep(): Promise<number> {
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepOnce(): Promise<number> {
    let removed = 0;
    for (let i = 0; i < SWEEP_BATCHES; i++) {
      const n = await this.store.pruneVolunteers({ now: this.now(), idleMs: this.limits.identityIdleMs, connected: this.connected(), limit: SWEEP_BATCH });
      removed += n;
      if (n < SWEEP_BATCH) break;
    }
    this.unproven = (await this.store.countVolunteers()).unproven;
    if (removed) {
      this.log(`forgot ${removed} idle identities that never did anything`);
      await this.forgotten();
    }
    return removed;
  }
}
