// Scale-out: two coordinators on one PostgreSQL share the work of one job, each unit is claimed
// once per replica, the ledger stays one verifiable chain, and a coordinator that dies has its
// leases taken over by the other once their heartbeat lapses.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { auditLedger } from '../../ledger/audit.js';
import { matmulReference } from '../../jobs/matmul.js';
import { loadCoordinatorPublicKey } from '../../access/keys.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { startPgCluster, type PgCluster } from '../../testing/pg-cluster.js';
import { PgStore } from './store.js';
import type { LedgerEntry } from '../../protocol/index.js';
import { honestCompute, SimWorker, type Compute } from '../../testing/sim-worker.js';
import { makeTempDir, randomMatrix, startTestCoordinator, waitFor } from '../../testing/helpers.js';

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPgCluster();
}, 60_000);
afterAll(() => cluster?.stop());

test('two coordinators on one PostgreSQL complete one job together with one ledger chain', async () => {
  const one = await startTestCoordinator({ database: cluster.url, heartbeatMs: 500 });
  // The second coordinator signs with the same key: operators copy it (see README).
  const dir2 = makeTempDir();
  copyFileSync(join(one.dir, 'coordinator-key.pem'), join(dir2, 'coordinator-key.pem'));
  const two = await startTestCoordinator({ database: cluster.url, dir: dir2, heartbeatMs: 500 });
  const workers: SimWorker[] = [];
  try {
    const [m, k, n] = [40, 24, 36];
    const A = randomMatrix(m, k, 21);
    const B = randomMatrix(k, n, 22);
    // Upload through one coordinator, submit through the other: shards live in the database.
    const a = await one.uploadShard(toNpy([m, k], A));
    const b = await one.uploadShard(toNpy([k, n], B));
    // Workers on coordinator one hold their first units until workers on two have some too, so
    // both coordinators demonstrably hand out work of a job submitted to only one of them.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const held: Compute = async (wu, inputs) => {
      await gate;
      return honestCompute(wu, inputs);
    };
    for (let i = 0; i < 3; i++) workers.push(new SimWorker({ url: one.base, name: `one-${i}`, compute: held }));
    await Promise.all(workers.map((w) => w.connect()));
    const jobId = await two.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 2, adaptive: false, tile: { rows: 8, cols: 12 } });
    const busy = (w: SimWorker) => w.messages.some((msg) => msg.type === 'assign');
    await waitFor(() => workers.every(busy), 10_000, 'coordinator one to find the job');
    for (let i = 0; i < 3; i++) workers.push(new SimWorker({ url: two.base, name: `two-${i}` }));
    await Promise.all(workers.slice(3).map((w) => w.connect()));
    await waitFor(() => workers.slice(3).some(busy), 10_000, 'coordinator two to hand out work');
    open();
    const status = await one.waitForJob(jobId, 30_000);
    expect(status.state).toBe('done');
    expect(status.progress).toEqual({ done: 15, total: 15 });
    const C = parseNpy(new Uint8Array(await (await two.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
    const ref = matmulReference(A, B, m, k, n);
    for (let i = 0; i < ref.length; i++) expect(C[i]).toBeCloseTo(ref[i], 5);

    // Every unit credited to exactly two distinct volunteers; both coordinators handed out work.
    const { entries } = (await (await one.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] };
    const perUnit = new Map<string, Set<string>>();
    for (const e of entries) perUnit.set(e.wuId, (perUnit.get(e.wuId) ?? new Set()).add(e.volunteerId));
    expect(perUnit.size).toBe(15);
    for (const vs of perUnit.values()) expect(vs.size).toBe(2);
    expect(entries).toHaveLength(30);

    const store = await PgStore.connect(cluster.url, 2);
    try {
      const report = await auditLedger(store, loadCoordinatorPublicKey(one.dir));
      expect(report.problems).toEqual([]);
      expect(report.entries).toBe(30);
    } finally {
      await store.close();
    }
  } finally {
    for (const w of workers) w.kill();
    await one.stop();
    await two.stop();
  }
}, 60_000);

test("a dead coordinator's leases lapse and another coordinator reissues them", async () => {
  // `ghost` plays a coordinator that leased a unit and then died: it never renews its heartbeat.
  const ghost = await PgStore.connect(cluster.url, 2);
  const live = await startTestCoordinator({ database: cluster.url, heartbeatMs: 500, leaseMs: 600_000 });
  const rescuer = new SimWorker({ url: live.base, name: 'rescuer' });
  try {
    const a = await live.uploadShard(toNpy([4, 4], randomMatrix(4, 4, 5)));
    await ghost.upsertVolunteer({ id: 'v_ghostvolunteer', publicKey: 'ghost-key', name: null, now: Date.now() });
    // Nobody is connected to `live` yet, so the job waits for the ghost's lease.
    const jobId = await live.submitJob({ kind: 'matmul', inputs: { a, b: a }, replication: 1 });
    const now = Date.now();
    const claimed = await ghost.leaseUnits({ volunteerId: 'v_ghostvolunteer', now, deadline: now + 600_000, aliveUntil: now + 1000 });
    expect(claimed[0]?.wu.id).toBe(`${jobId}.0`);
    await rescuer.connect();
    // The deadline is ten minutes away; only the lapsed heartbeat can free the unit.
    expect((await live.waitForJob(jobId, 20_000)).state).toBe('done');
    const lease = await ghost.getLease(claimed[0].lease.id);
    expect(lease?.state).toBe('expired');
  } finally {
    rescuer.kill();
    await live.stop();
    await ghost.close();
  }
}, 60_000);

test('a job cancelled through one coordinator: a worker on the other is told to stop within a heartbeat', async () => {
  const one = await startTestCoordinator({ database: cluster.url, heartbeatMs: 500 });
  const dir2 = makeTempDir();
  copyFileSync(join(one.dir, 'coordinator-key.pem'), join(dir2, 'coordinator-key.pem'));
  const two = await startTestCoordinator({ database: cluster.url, dir: dir2, heartbeatMs: 500 });
  const stuck = new SimWorker({ url: two.base, name: 'stuck', compute: () => new Promise(() => {}) });
  try {
    await stuck.connect();
    const a = await one.uploadShard(toNpy([4, 4], randomMatrix(4, 4, 6)));
    const jobId = await one.submitJob({ kind: 'matmul', inputs: { a, b: a }, replication: 1 });
    await waitFor(() => stuck.received('assign').length > 0, 10_000, 'coordinator two to lease the unit');
    const leaseId = stuck.received('assign')[0].lease.id;
    expect((await one.api(`/api/jobs/${jobId}/cancel`, { method: 'POST' })).status).toBe(200);
    await waitFor(() => stuck.received('lease-cancelled').find((m) => m.leaseId === leaseId), 5_000, 'the worker on two to be told');
    expect(stuck.received('lease-cancelled')[0]).toMatchObject({ leaseId, reason: 'no longer wanted (ended by another coordinator)' });
    expect(stuck.received('lease-cancelled')[0].stillAccepted).toBeUndefined();
  } finally {
    stuck.kill();
    await two.stop();
    await one.stop();
  }
}, 60_000);
