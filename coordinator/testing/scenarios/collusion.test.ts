// Colluding identities against replication: two identities that draw both replicas of a unit agree
// on any forgery they like, so replication alone settles it. The audit (work/audit.ts) recomputes a
// quorum with a new member before it settles. Here the colluders are the only workers when the job
// arrives, so they draw each other's replicas of every unit — deterministically: with the audit they
// are struck on their first quorum and earn nothing, honest workers then compute the job, and its
// result is the honest reference. With the audit off, the same pair is credited and its forgery is the
// result (the test can fail). (Attention is left out: its check's random rows catch such a pair by
// chance first, which would make this scenario's course random.)
import { describe, expect, test } from 'vitest';
import { centralReference } from '../../jobs/train.js';
import { TrainJobSubmit, type LedgerEntry, type VolunteerSummary } from '../../protocol/index.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { scaledDelta } from '../../tools/adversaries/train-workers.js';
import { DEFAULT_TRUST_POLICY, type TrustPolicy } from '../../work/trust.js';
import { randomMatrix, startTestCoordinator, waitFor, type TestCoordinator } from '../helpers.js';
import { honestCompute, onnxRuntimeCompute, SimWorker, type Compute } from '../sim-worker.js';
import { mlpModel } from '../test-models.js';
import { blobsTask, relativeL2 } from '../train-task.js';

const AUDITED: TrustPolicy = { ...DEFAULT_TRUST_POLICY, auditNewProbability: 1 };
const UNAUDITED: TrustPolicy = { ...DEFAULT_TRUST_POLICY, auditNewProbability: 0, auditMinProbability: 0 };

/** A job, the colluders' shared forgery, the workers' kinds, and the honest result to compare with. */
interface Case {
  kinds?: string[];
  submit(g: TestCoordinator): Promise<{ jobId: string; expected: Float32Array; tol: number }>;
  forge(g: TestCoordinator): Compute;
  honest(g: TestCoordinator): Compute;
}

const task = blobsTask(256, 8, 4, 5);
const trainBody = (data: { x: string; y: string }) => ({
  kind: 'train',
  model: { type: 'mlp', layers: [8, 16, 4] },
  data,
  rounds: 2,
  localSteps: 8,
  batchSize: 32,
  innerOptimizer: { type: 'adamw', lr: 0.01 },
  unitsPerRound: 2,
});

/** The test model's logits in float64 (x·w1 + b1, ReLU, ·w2 + b2): weights as test-models.ts seeds them. */
function mlpModelLogits(x: Float32Array, rows: number, seed = 1): Float32Array {
  const [w1, b1, w2, b2] = [randomMatrix(16, 32, seed, -0.5, 0.5), randomMatrix(1, 32, seed + 1, -0.1, 0.1), randomMatrix(32, 10, seed + 2, -0.5, 0.5), randomMatrix(1, 10, seed + 3, -0.1, 0.1)];
  const out = new Float32Array(rows * 10);
  for (let r = 0; r < rows; r++) {
    const h = Array.from({ length: 32 }, (_, j) => Math.max(0, b1[j] + Array.from({ length: 16 }, (_, k) => x[r * 16 + k] * w1[k * 32 + j]).reduce((a, b) => a + b, 0)));
    for (let o = 0; o < 10; o++) out[r * 10 + o] = b2[o] + h.reduce((s, hj, j) => s + hj * w2[j * 10 + o], 0);
  }
  return out;
}

const cases: Record<string, Case> = {
  // A sign-flipped ×10 Δ with its check loss forged: the cheap check passes.
  train: {
    kinds: ['train'],
    async submit(g) {
      const data = { x: await g.uploadShard(toNpy([task.n, task.f], task.x)), y: await g.uploadShard(toNpy([task.n], task.y)) };
      const body = trainBody(data);
      const jobId = await g.submitJob(body);
      return { jobId, expected: Float32Array.from(centralReference(TrainJobSubmit.parse(body), task).params), tol: 1e-4 };
    },
    forge: () => scaledDelta(-10),
    honest: () => honestCompute,
  },
  // ONNX has no cheap check at all: every logit shifted by 0.5.
  onnx: {
    kinds: ['onnx'],
    async submit(g) {
      const res = await g.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(mlpModel(1)) });
      const model = ((await res.json()) as { sha256: string }).sha256;
      const x = randomMatrix(24, 16, 9);
      const jobId = await g.submitJob({ kind: 'onnx', model, inputs: { x: await g.uploadShard(toNpy([24, 16], x)) }, replication: 2 });
      return { jobId, expected: mlpModelLogits(x, 24), tol: 1e-4 };
    },
    forge: (g) => {
      const honest = onnxRuntimeCompute(g.base);
      return async (wu, inputs) => (await honest(wu, inputs)).map((v) => v + 0.5);
    },
    honest: (g) => onnxRuntimeCompute(g.base),
  },
};

async function run(name: string, policy: TrustPolicy) {
  const c = cases[name];
  const g = await startTestCoordinator({ trustPolicy: policy });
  const workers: SimWorker[] = [];
  const start = async (compute: Compute) => {
    const w = new SimWorker({ url: g.base, kinds: c.kinds, compute, slots: 1 });
    workers.push(w);
    await w.connect();
    return w;
  };
  try {
    const colluders = [await start(c.forge(g)), await start(c.forge(g))];
    const { jobId, expected, tol } = await c.submit(g);
    // With the audit, both colluders are struck (and disconnected) on their first quorum; without it
    // they are the whole grid and finish the job alone.
    const over = () => g.logs.some((l) => l.includes(`job ${jobId}`) && /done: result/.test(l));
    await waitFor(() => colluders.every((w) => w.closed) || over(), 30_000, 'the colluders struck, or the job over');
    await start(c.honest(g));
    await start(c.honest(g));
    const status = await g.waitForJob(jobId, 60_000);
    const result = parseNpy(new Uint8Array(await (await g.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
    const ids = new Set(colluders.map((w) => w.volunteerId));
    const { entries } = (await (await g.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] };
    const { volunteers } = (await (await g.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    return {
      state: status.state,
      resultDistance: relativeL2(result, expected),
      tol,
      granted: entries.filter((e) => ids.has(e.volunteerId) && e.amount > 0).reduce((s, e) => s + e.amount, 0),
      held: volunteers.filter((v) => ids.has(v.id)).reduce((s, v) => s + v.credit, 0),
      colludersValid: volunteers.filter((v) => ids.has(v.id)).reduce((s, v) => s + v.results.valid, 0),
      auditStrikes: g.logs.filter((l) => /failed the coordinator's audit/.test(l)),
      suspended: colluders.filter((w) => /suspended/.test(w.closed?.reason ?? '')).length,
      colluders: [...ids],
    };
  } finally {
    for (const w of workers) w.close();
    await g.stop();
  }
}

/** ONNX sim workers on `g`, each with its own compute, connected one by one; `workers` to close them. */
function onnxWorkers(g: TestCoordinator) {
  const workers: SimWorker[] = [];
  const start = async (compute: Compute) => {
    const w = new SimWorker({ url: g.base, kinds: ['onnx'], compute, slots: 1 });
    workers.push(w);
    await w.connect();
    return w;
  };
  return { workers, start };
}

describe('colluding identities who draw each other’s replicas', () => {
  test.each(['train', 'onnx'])('%s: the audit catches their quorum; they earn nothing and the result is the honest one', async (name) => {
    const r = await run(name, AUDITED);
    expect(r.state).toBe('done');
    expect(r.resultDistance).toBeLessThan(r.tol);
    expect(r.granted).toBe(0);
    expect(r.held).toBe(0);
    expect(r.colludersValid).toBe(0);
    expect(r.suspended).toBe(2);
    // Each colluder was struck for backing a quorum the audit proved wrong.
    for (const id of r.colluders) expect(r.auditStrikes.some((l) => l.includes(id))).toBe(true);
  }, 90_000);

  test('without the audit the same pair is credited and its forgery is the result (what the audit prevents)', async () => {
    const r = await run('train', UNAUDITED);
    expect(r.state).toBe('done');
    expect(r.granted).toBeGreaterThan(0);
    expect(r.colludersValid).toBeGreaterThan(0);
    expect(r.resultDistance).toBeGreaterThan(0.01);
    expect(r.auditStrikes).toEqual([]);
  }, 90_000);

  test('a pair whose forgeries went unaudited at first loses all of them when one is audited: credit reversed, the job recomputed', async () => {
    // Audits off while the pair finishes a first job alone; then on (trustedAfter 100: they are still new).
    const policy: TrustPolicy = { ...DEFAULT_TRUST_POLICY, trustedAfter: 100, auditNewProbability: 0, auditMinProbability: 0 };
    const g = await startTestCoordinator({ trustPolicy: policy });
    const { workers, start } = onnxWorkers(g);
    try {
      const colluders = [await start(cases.onnx.forge(g)), await start(cases.onnx.forge(g))];
      const first = await cases.onnx.submit(g);
      expect((await g.waitForJob(first.jobId, 30_000)).state).toBe('done');
      const ids = new Set(colluders.map((w) => w.volunteerId));
      const ledger = async () => ((await (await g.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries.filter((e) => ids.has(e.volunteerId));
      expect((await ledger()).reduce((s, e) => s + e.amount, 0)).toBeGreaterThan(0); // forged, and credited

      policy.auditNewProbability = 1;
      const second = await cases.onnx.submit(g);
      await waitFor(() => colluders.every((w) => w.closed), 30_000, 'the colluders struck');
      await start(cases.onnx.honest(g));
      await start(cases.onnx.honest(g));
      for (const { jobId, expected, tol } of [first, second]) {
        expect((await g.waitForJob(jobId, 60_000)).state).toBe('done');
        const result = parseNpy(new Uint8Array(await (await g.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
        for (let i = 0; i < expected.length; i++) expect(Math.abs(result[i] - expected[i])).toBeLessThan(tol);
      }
      // What the first job credited them was taken back by sealed negative entries.
      const entries = await ledger();
      expect(entries.some((e) => e.amount < 0)).toBe(true);
      expect(entries.reduce((s, e) => s + e.amount, 0)).toBe(0);
      expect(g.logs.some((l) => /revoked \d+ results of quorums formed only by/.test(l))).toBe(true);
    } finally {
      for (const w of workers) w.close();
      await g.stop();
    }
  }, 90_000);
});

describe('a drawn quorum the coordinator cannot recompute (its unit above auditMaxFlops)', () => {
  /** A compute that waits for `open` before it answers, counting the units it has started. */
  const gate = () => {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const g = { started: 0, open, wrap: (c: Compute): Compute => async (wu, inputs) => (g.started++, await opened, c(wu, inputs)) };
    return g;
  };

  test('is escalated: honest replicas from outside it outvote the colluders’ forgery; an honest quorum is joined by the extra replica', async () => {
    const g = await startTestCoordinator({ trustPolicy: { ...AUDITED, auditMaxFlops: 0 } });
    const { workers, start } = onnxWorkers(g);
    const resultOf = async (jobId: string) => parseNpy(new Uint8Array(await (await g.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
    const ledger = async () => ((await (await g.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] }).entries;
    try {
      // The pair draws both replicas of the job's one unit; an honest identity connects before they answer.
      const held = gate();
      const colluders = [await start(held.wrap(cases.onnx.forge(g))), await start(held.wrap(cases.onnx.forge(g)))];
      const first = await cases.onnx.submit(g);
      await waitFor(() => held.started === 2, 30_000, 'both replicas leased to the pair');
      const honest = [await start(cases.onnx.honest(g))];
      held.open();
      // Their quorum is drawn (they are new) but too big to recompute: it does not settle, it waits for a third identity.
      await waitFor(() => g.c.auditStats().escalated === 1, 30_000, 'the colluders’ quorum escalated');
      expect(g.logs.some((l) => /drawn \(newcomers\) but not run \(too big\): escalated, one more replica asked from outside its quorum; it settles once 3 results agree/.test(l))).toBe(true);
      expect(((await (await g.api(`/api/jobs/${first.jobId}`)).json()) as { state: string }).state).toBe('running');

      honest.push(await start(cases.onnx.honest(g)), await start(cases.onnx.honest(g)));
      expect((await g.waitForJob(first.jobId, 60_000)).state).toBe('done');
      const result = await resultOf(first.jobId);
      for (let i = 0; i < first.expected.length; i++) expect(Math.abs(result[i] - first.expected[i])).toBeLessThan(first.tol);
      // The three honest replicas outvoted the pair: credited, the pair not, its results invalid.
      const ids = (ws: SimWorker[]) => new Set(ws.map((w) => w.volunteerId));
      const firstCredits = (await ledger()).filter((e) => e.wuId.startsWith(first.jobId));
      expect(new Set(firstCredits.map((e) => e.volunteerId))).toEqual(ids(honest));
      const { volunteers } = (await (await g.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
      for (const v of volunteers.filter((v) => ids(colluders).has(v.id))) expect(v.results).toMatchObject({ valid: 0, invalid: 1 });
      expect(g.c.auditStats()).toEqual({ audited: 0, forged: 0, escalated: 1, outvoted: 1, skipped: 0 });
      expect(g.logs.some((l) => /escalated .*: 3 results from outside its quorum outvoted the 2 it had/.test(l))).toBe(true);

      // Honest identities, still new: their quorum is escalated too, the extra replica agrees, and all three are credited.
      for (const w of colluders) w.close();
      const second = await cases.onnx.submit(g);
      expect((await g.waitForJob(second.jobId, 60_000)).state).toBe('done');
      const secondCredits = (await ledger()).filter((e) => e.wuId.startsWith(second.jobId));
      expect(secondCredits.filter((e) => e.amount > 0).map((e) => e.volunteerId).sort()).toEqual([...ids(honest)].sort());
      expect(g.c.auditStats()).toEqual({ audited: 0, forged: 0, escalated: 2, outvoted: 1, skipped: 0 });
    } finally {
      for (const w of workers) w.close();
      await g.stop();
    }
  }, 90_000);

  test('with no identity outside the quorum connected (a grid of two), it settles as its quorum says rather than stall the job', async () => {
    const g = await startTestCoordinator({ trustPolicy: { ...AUDITED, auditMaxFlops: 0 } });
    const workers = [0, 1].map(() => new SimWorker({ url: g.base, kinds: ['onnx'], compute: cases.onnx.honest(g), slots: 1 }));
    try {
      for (const w of workers) await w.connect();
      const job = await cases.onnx.submit(g);
      expect((await g.waitForJob(job.jobId, 60_000)).state).toBe('done');
      expect(g.c.auditStats()).toEqual({ audited: 0, forged: 0, escalated: 0, outvoted: 0, skipped: 1 });
      expect(g.logs.some((l) => /not run \(too big\), and no identity outside its quorum is connected: it settles as its quorum of 2 says/.test(l))).toBe(true);
    } finally {
      for (const w of workers) w.close();
      await g.stop();
    }
  }, 60_000);
});
