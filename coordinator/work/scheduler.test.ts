// The scheduler's cost does not grow with idle workers: a worker that found nothing is asked
// again only when the work changes (or on the next tick).
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import type { ServerMessage } from '../protocol/index.js';
import { Scheduler, type LeaseInfo, type WorkerSession } from './scheduler.js';
import { SqliteStore } from '../store/sqlite/store.js';
import type { NewWorkUnit } from '../store/store.js';
import { makeTempDir, removeDir } from '../testing/helpers.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

function session(i: number): WorkerSession & { got: ServerMessage[] } {
  const got: ServerMessage[] = [];
  return { volunteerId: `v_${i}`, slots: 1, leases: new Map<string, LeaseInfo>(), got, send: (m) => got.push(m) };
}

const JOB = { kind: 'matmul', name: null, state: 'queued' as const, replication: 1, meta: {}, createdAt: 0, finishedAt: null, error: null, resultSha: null, resultShape: [1, 1] };

function units(jobId: string, n: number): NewWorkUnit[] {
  return Array.from({ length: n }, (_, idx) => ({
    id: `${jobId}.${idx}`,
    jobId,
    idx,
    kind: 'matmul',
    params: { m: 1, k: 1, n: 1 },
    inputs: {},
    outputBytes: 4,
    flops: 2,
    tolerance: { atol: 0, rtol: 0 },
    meta: {},
  }));
}

/** A store in a fresh directory that counts its lease queries. */
function countingStore() {
  const dir = makeTempDir();
  dirs.push(dir);
  const store = new SqliteStore(join(dir, 'db.sqlite'));
  let asks = 0;
  const leaseUnits = store.leaseUnits.bind(store);
  store.leaseUnits = (...args) => (asks++, leaseUnits(...args));
  return { store, asked: () => asks };
}

test('idle workers are not asked again until new work arrives', async () => {
  const { store, asked } = countingStore();
  const scheduler = new Scheduler(store, { leaseMs: 60_000 });
  const workers = Array.from({ length: 50 }, (_, i) => session(i));
  for (const w of workers) scheduler.add(w);

  await scheduler.dispatch();
  expect(asked()).toBe(50); // everyone asked once: nothing to do
  for (let i = 0; i < 10; i++) await scheduler.dispatch();
  expect(asked()).toBe(50); // and not again while nothing changed

  await store.createJob({ ...JOB, id: 'j1' }, units('j1', 20));
  await scheduler.dispatch();
  expect(workers.filter((w) => w.got.some((m) => m.type === 'assign'))).toHaveLength(20);
  const afterJob = asked();
  for (let i = 0; i < 10; i++) await scheduler.dispatch();
  expect(asked()).toBe(afterJob); // the 30 without work wait again

  // A worker vanishes: its replica is wanted again, so the idle ones are asked.
  await scheduler.remove(workers.find((w) => w.leases.size > 0)!);
  expect(workers.filter((w) => w.got.filter((m) => m.type === 'assign').length > 0)).toHaveLength(21);
  await store.close();
});

test('a worker with free slots gets them filled in one lease query, never one unit twice', async () => {
  const { store, asked } = countingStore();
  const scheduler = new Scheduler(store, { leaseMs: 60_000 });
  await store.createJob({ ...JOB, id: 'j1', replication: 2 }, units('j1', 5));
  const [a, b] = [session(1), session(2)];
  a.slots = 8;
  b.slots = 3;
  scheduler.add(a);
  scheduler.add(b);
  await scheduler.dispatch();
  expect(asked()).toBe(2); // one query per worker, whatever its slots
  const assigned = (w: typeof a) => w.got.filter((m) => m.type === 'assign').map((m) => (m.type === 'assign' ? m.wu.id : ''));
  expect(assigned(a).sort()).toEqual(['j1.0', 'j1.1', 'j1.2', 'j1.3', 'j1.4']); // all 5 units, each once
  expect(assigned(b)).toEqual(['j1.0', 'j1.1', 'j1.2']); // the second replicas, in queue order
  await store.close();
});

test('a failed job hands out no more work', async () => {
  const { store } = countingStore();
  await store.createJob({ ...JOB, id: 'j1' }, units('j1', 4));
  await store.createJob({ ...JOB, id: 'j2' }, units('j2', 1));
  const [first] = await store.leaseUnits({ volunteerId: 'v_1', now: 1, deadline: 1e15 });
  await store.failWorkUnit(first.wu.id, 'no quorum', 2);
  expect((await store.getJob('j1'))?.state).toBe('failed');
  // j1's three other units are closed: the next worker gets j2's unit, then nothing.
  const next = await store.leaseUnits({ volunteerId: 'v_2', now: 3, deadline: 1e15, count: 8 });
  expect(next.map((l) => l.wu.id)).toEqual(['j2.0']);
  expect((await store.getWorkUnit('j1.1'))?.state).toBe('error');
  await store.close();
});

test('a pass the store refuses is logged, never thrown, and the next one hands the work out', async () => {
  const { store } = countingStore();
  const logged: string[] = [];
  const scheduler = new Scheduler(store, { leaseMs: 60_000, log: (m) => logged.push(m) });
  await store.createJob({ ...JOB, id: 'j' }, units('j', 2));
  const w = session(0);
  scheduler.add(w);
  const leaseUnits = store.leaseUnits.bind(store);
  store.leaseUnits = async () => {
    throw new Error('database is locked');
  };
  await expect(scheduler.dispatch()).resolves.toBeUndefined();
  expect(logged).toEqual([expect.stringContaining('database is locked')]);
  expect(w.got).toEqual([]);
  store.leaseUnits = leaseUnits;
  await scheduler.tick();
  expect(w.got.map((m) => m.type)).toEqual(['assign']);
  await store.close();
});
