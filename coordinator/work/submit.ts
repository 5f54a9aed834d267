// Submission: a validated job planned into work units by its kind, stored, and the scheduler woken.
// A submission the kind cannot run throws JobInputError (the HTTP layer answers 400).
import { jobKind } from '../jobs/index.js';
import { JobInputError } from '../jobs/types.js';
import type { JobSubmit } from '../protocol/index.js';
import type { ShardStore } from '../store/shards.js';
import type { Store } from '../store/store.js';
import type { Scheduler } from './scheduler.js';

export interface SubmitDeps {
  store: Store;
  shards: ShardStore;
  scheduler: Scheduler;
  now: () => number;
  log: (msg: string) => void;
}

/** `owner`: who submitted it (an API token's id, or `room:<code>` for a room's demo): only it and admin tokens see it. */
export async function submitJob(deps: SubmitDeps, submit: JobSubmit, owner: string | null): Promise<{ id: string; workUnits: number }> {
  const { store, shards, scheduler } = deps;
  const kind = jobKind(submit.kind);
  if (!kind) throw new JobInputError(`unknown job kind ${submit.kind}`);
  const plan = await kind.plan(submit, shards);
  const id = `j_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
  // Adaptive replication only where the kind's check can catch a wrong output on its own.
  const adaptive = kind.checksOutputs === true && !('adaptive' in submit && submit.adaptive === false);
  await store.createJob(
    {
      id,
      kind: submit.kind,
      name: submit.name ?? null,
      state: 'queued',
      replication: submit.replication,
      meta: plan.meta,
      createdAt: deps.now(),
      finishedAt: null,
      error: null,
      resultSha: null,
      resultShape: plan.resultShape,
      owner,
    },
    // Adaptive replication starts each unit at one result and replicates as trust requires.
    plan.workUnits.map((u, idx) => ({ ...u, id: `${id}.${idx}`, jobId: id, idx, kind: submit.kind, target: adaptive ? 1 : submit.replication })),
  );
  deps.log(`job ${id}: ${submit.kind}, ${plan.workUnits.length} work units × ${submit.replication} replicas`);
  void scheduler.dispatch();
  return { id, workUnits: plan.workUnits.length };
}
