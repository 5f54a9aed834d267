// Escalated replication: a quorum drawn for the audit that the coordinator cannot recompute (a unit
// above `auditMaxFlops`, its audit queue full, no verdict) must not settle as it stands — colluders
// would aim at exactly those units. Its unit wants one more replica instead, which the store leases
// only to an identity with no result for the unit (store.leaseUnits), so from outside the quorum;
// and it now settles only when one more result than the quorum had agrees. The extra replica agrees:
// the unit settles with all of them. It disagrees: no group is big enough, the unit wants more
// replicas (validator.ts, up to maxReplicas) until one is, so honest replicas outvote a forged
// quorum (whose members then lose their streaks, as any outvoted result does). It costs volunteers'
// compute, not the coordinator's; what it cannot stop is extra replicas drawn by the colluders'
// own identities, which only the audit can. With nobody outside the quorum connected who runs its
// kind (validator.ts asks the scheduler), the quorum settles as it is: waiting would stall the job.
//
// Kept in memory: one small entry per escalated unit, at most MAX_ESCALATED, the oldest forgotten
// first (units a closed round dropped or a cancelled job left never settle, and leave that way).
// A unit forgotten — so, or by a restart, or validated by another coordinator sharing the store —
// is drawn again when next validated: a quorum with a new member always is (and its unit is as big
// as before), so it escalates again; an established quorum gets a fresh sampled draw.
export const MAX_ESCALATED = 10_000;

export interface Escalation {
  /** Agreeing results the unit now needs: one more than the quorum that was escalated. */
  quorum: number;
  /** The ids of that quorum's results. */
  backers: string[];
}

export class Escalations {
  private readonly units = new Map<string, Escalation>();

  constructor(private readonly max = MAX_ESCALATED) {}

  get size(): number {
    return this.units.size;
  }

  get(wuId: string): Escalation | undefined {
    return this.units.get(wuId);
  }

  /** The unit's quorum, backed by the results `backers`, must now be joined by one more. */
  add(wuId: string, backers: string[]): Escalation {
    this.units.delete(wuId);
    if (this.units.size >= this.max) this.units.delete(this.units.keys().next().value!);
    const e = { quorum: backers.length + 1, backers };
    this.units.set(wuId, e);
    return e;
  }

  /** Forgets the unit (it settled, failed or closed): what it was, if escalated. */
  end(wuId: string): Escalation | undefined {
    const e = this.units.get(wuId);
    this.units.delete(wuId);
    return e;
  }
}
