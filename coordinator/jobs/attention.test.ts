import { describe, expect, test } from 'vitest';
import { parseNpy, toNpy } from '../protocol/npy.js';
import { JobSubmit, WorkUnitSpec, type AttentionJobSubmit, type AttentionParams, type VolunteerSummary } from '../protocol/index.js';
import type { JobRecord, WorkUnitRecord } from '../store/store.js';
import { honestCompute, SimWorker } from '../testing/sim-worker.js';
import { float32Attention } from '../testing/device-math.js';
import { randomMatrix, startTestCoordinator } from '../testing/helpers.js';
import { useTempShards } from '../testing/fixtures.js';
import { compareWithin } from './compare.js';
import { attention, attentionReference, attentionReferenceHeads, attentionTolerance, checkRandomRows } from './attention.js';
import { JobInputError } from './types.js';

const temp = useTempShards();

/** Textbook attention in float64 with the full score matrix and no max subtraction. */
function naiveAttention(q: Float32Array, k: Float32Array, v: Float32Array, seq: number, d: number, causal: boolean): Float64Array {
  const out = new Float64Array(seq * d);
  for (let i = 0; i < seq; i++) {
    const w = new Float64Array(seq);
    let sum = 0;
    for (let j = 0; j < seq; j++) {
      if (causal && j > i) continue;
      let s = 0;
      for (let c = 0; c < d; c++) s += q[i * d + c] * k[j * d + c];
      w[j] = Math.exp(s / Math.sqrt(d));
      sum += w[j];
    }
    for (let j = 0; j < seq; j++) for (let c = 0; c < d; c++) out[i * d + c] += (w[j] / sum) * v[j * d + c];
  }
  return out;
}

/**
 * An independent float64 attention, written here and sharing nothing with attention.ts: three
 * passes over one query block — (1) every score s_ij = q_i·k_j/√d of the block, (2) each row's
 * max and softmax weights p_ij = exp(s_ij − max_i)/Σ_j exp(s_ij − max_i), (3) out = P·V.
 * (The coordinator's reference and its row check share attentionRow; this checks both.)
 */
function threePassAttention(q: Float32Array, k: Float32Array, v: Float32Array, p: AttentionParams): Float64Array {
  const { rows, seq, d, q0, causal } = p;
  const visible = (i: number) => (causal ? Math.min(seq, q0 + i + 1) : seq);
  // Pass 1: scores.
  const scores = Array.from({ length: rows }, (_, i) => {
    const row = new Float64Array(visible(i));
    for (let j = 0; j < row.length; j++) {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += q[i * d + c] * k[j * d + c];
      row[j] = dot / Math.sqrt(d);
    }
    return row;
  });
  // Pass 2: softmax weights, each row shifted by its max.
  const weights = scores.map((row) => {
    const max = row.reduce((m, x) => Math.max(m, x), -Infinity);
    const e = row.map((x) => Math.exp(x - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  });
  // Pass 3: the weighted sum of V's rows.
  const out = new Float64Array(rows * d);
  for (let i = 0; i < rows; i++) {
    for (let c = 0; c < d; c++) {
      let acc = 0;
      for (let j = 0; j < weights[i].length; j++) acc += weights[i][j] * v[j * d + c];
      out[i * d + c] = acc;
    }
  }
  return out;
}

/** threePassAttention over [heads, seq, d] tensors, head by head. */
function threePassHeads(q: Float32Array, k: Float32Array, v: Float32Array, heads: number, seq: number, d: number, causal: boolean): Float64Array {
  const out = new Float64Array(heads * seq * d);
  const size = seq * d;
  for (let h = 0; h < heads; h++) {
    const at = (t: Float32Array) => t.subarray(h * size, (h + 1) * size);
    out.set(threePassAttention(at(q), at(k), at(v), params(seq, seq, d, causal)), h * size);
  }
  return out;
}

function maxAbs(t: Float32Array): number {
  return t.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
}

function params(rows: number, seq: number, d: number, causal: boolean, q0 = 0): AttentionParams {
  return { rows, seq, d: d as AttentionParams['d'], causal, q0 };
}

describe('attentionReference', () => {
  test('one key: the output is that key’s value row', () => {
    const v = randomMatrix(1, 64, 1);
    const out = attentionReference(randomMatrix(1, 64, 2), randomMatrix(1, 64, 3), v, params(1, 1, 64, false));
    expect(Array.from(out)).toEqual(Array.from(v));
  });

  test('zero queries weigh keys equally: mean of V, or of its prefix when causal', () => {
    const [seq, d] = [5, 64];
    const v = randomMatrix(seq, d, 4);
    const q = new Float32Array(seq * d);
    const k = randomMatrix(seq, d, 5);
    for (const causal of [false, true]) {
      const out = attentionReference(q, k, v, params(seq, seq, d, causal));
      for (let i = 0; i < seq; i++) {
        const keys = causal ? i + 1 : seq;
        for (let c = 0; c < d; c++) {
          let mean = 0;
          for (let j = 0; j < keys; j++) mean += v[j * d + c] / keys;
          expect(out[i * d + c]).toBeCloseTo(mean, 6);
        }
      }
    }
  });

  test.each([
    [7, 64, false],
    [7, 64, true],
    [12, 128, true],
  ] as const)('matches the textbook formula (seq %i, d %i, causal %s)', (seq, d, causal) => {
    const q = randomMatrix(seq, d, 6);
    const k = randomMatrix(seq, d, 7);
    const v = randomMatrix(seq, d, 8);
    const out = attentionReference(q, k, v, params(seq, seq, d, causal));
    const naive = naiveAttention(q, k, v, seq, d, causal);
    for (let i = 0; i < out.length; i++) expect(out[i]).toBeCloseTo(naive[i], 6);
  });

  test.each([
    [1, 1, 64, false, 0, 1],
    [16, 40, 64, true, 24, 1], // a later block of a causal sequence
    [20, 100, 128, false, 0, 1],
    [17, 61, 64, true, 44, 4], // logits up to 128: exp overflows without the max shift
    [8, 8, 64, false, 0, 30], // logits in the thousands
  ] as const)('matches an independent three-pass float64 attention (%i rows of %i, d %i, causal %s, q0 %i, scale %i)', (rows, seq, d, causal, q0, scale) => {
    const q = randomMatrix(rows, d, 61, -scale, scale);
    const k = randomMatrix(seq, d, 62, -scale, scale);
    const v = randomMatrix(seq, d, 63);
    const p = params(rows, seq, d, causal, q0);
    const out = attentionReference(q, k, v, p);
    const independent = threePassAttention(q, k, v, p);
    expect(independent.every(Number.isFinite)).toBe(true);
    // Both are float64 until the reference rounds once to float32: within one float32 ulp of |v|∞ ≤ 1.
    for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - independent[i])).toBeLessThanOrEqual(2 ** -23);
  });

  test('large logits that overflow a naive softmax stay finite and pick the dominant key', () => {
    const [seq, d] = [8, 64];
    const q = randomMatrix(seq, d, 9, 30, 31); // scores ~ 64·30·30/8 ≈ 7000: exp overflows
    const k = randomMatrix(seq, d, 10, -1, 1);
    k.fill(31, 3 * d, 4 * d); // key 3 wins every non-causal row by thousands
    const v = randomMatrix(seq, d, 11);
    expect(naiveAttention(q, k, v, seq, d, false).some(Number.isNaN)).toBe(true);
    const out = attentionReference(q, k, v, params(seq, seq, d, false));
    expect(out.every(Number.isFinite)).toBe(true);
    for (let i = 0; i < seq; i++) expect(Array.from(out.subarray(i * d, (i + 1) * d))).toEqual(Array.from(v.subarray(3 * d, 4 * d)));
  });
});

describe('tolerance', () => {
  test.each([
    [1, 1, 64, false, 1],
    [33, 33, 64, true, 1],
    [20, 100, 128, false, 1],
    [17, 61, 64, true, 4], // |q|, |k| up to 4: logits up to 128, past exp's float32 range
  ] as const)('a float32 online-softmax result of %i×%i (d %i, causal %s, scale %i) is within tolerance', (rows, seq, d, causal, scale) => {
    const q0 = seq - rows;
    const q = randomMatrix(rows, d, 12, -scale, scale);
    const k = randomMatrix(seq, d, 13, -scale, scale);
    const v = randomMatrix(seq, d, 14);
    const p = params(rows, seq, d, causal, q0);
    const tol = attentionTolerance(p, maxAbs(q), maxAbs(k), maxAbs(v));
    const gpuLike = float32Attention(q, k, v, p);
    expect(gpuLike.every(Number.isFinite)).toBe(true);
    expect(compareWithin(gpuLike, attentionReference(q, k, v, p), tol)).toEqual({ ok: true });
    expect(checkRandomRows(q, k, v, gpuLike, p, tol, rows)).toBe(true);
  });

  test('the tolerance is far tighter than the effect of a wrong mask', () => {
    const p = params(16, 16, 64, true);
    const [q, k, v] = [randomMatrix(16, 64, 15), randomMatrix(16, 64, 16), randomMatrix(16, 64, 17)];
    const tol = attentionTolerance(p, maxAbs(q), maxAbs(k), maxAbs(v));
    const unmasked = attentionReference(q, k, v, { ...p, causal: false });
    expect(compareWithin(unmasked, attentionReference(q, k, v, p), tol).ok).toBe(false);
  });
});

describe('checkRandomRows', () => {
  const p = params(24, 40, 64, true, 16);
  const q = randomMatrix(24, 64, 18);
  const k = randomMatrix(40, 64, 19);
  const v = randomMatrix(40, 64, 20);
  const tol = attentionTolerance(p, maxAbs(q), maxAbs(k), maxAbs(v));
  // Results made without attention.ts (whose attentionRow the check itself uses): the independent
  // float64 attention rounded to float32, and float32 device arithmetic in two key orders.
  const honest = Float32Array.from(threePassAttention(q, k, v, p));

  test('passes an honest result: exact, or float32 arithmetic in either key order', () => {
    expect(checkRandomRows(q, k, v, honest, p, tol)).toBe(true);
    for (const order of ['forward', 'reverse'] as const) expect(checkRandomRows(q, k, v, float32Attention(q, k, v, p, order), p, tol, p.rows)).toBe(true);
  });

  test.each([0, 11, 23])('checking every row catches a corrupted row %i', (row) => {
    const bad = honest.slice();
    bad[row * 64 + 5] += 0.01;
    expect(checkRandomRows(q, k, v, bad, p, tol, p.rows)).toBe(false);
  });

  test('catches a systematic error (causal mask ignored), NaN, and a wrong length with the default sample', () => {
    expect(checkRandomRows(q, k, v, Float32Array.from(threePassAttention(q, k, v, { ...p, causal: false })), p, tol)).toBe(false);
    expect(checkRandomRows(q, k, v, new Float32Array(honest.length).fill(Number.NaN), p, tol)).toBe(false);
    expect(checkRandomRows(q, k, v, honest.subarray(64), p, tol)).toBe(false);
  });
});

describe('plan, check and assimilate', () => {
  const upload = (heads: number, seq: number, d: number, data: Float32Array) => temp.shards.put(toNpy([heads, seq, d], data));

  test.each([
    // heads, seq, d, blockRows, causal
    [1, 1, 64, undefined, false],
    [2, 37, 64, 16, true], // seq not a multiple of the block
    [3, 50, 128, 17, false],
    [1, 33, 128, 32, true], // block edge + 1
    [2, 20, 64, 64, true], // block larger than seq
  ] as const)('%i heads × seq %i × d %i, blockRows %s, causal %s', async (heads, seq, d, blockRows, causal) => {
    const Q = randomMatrix(heads * seq, d, 21);
    const K = randomMatrix(heads * seq, d, 22);
    const V = randomMatrix(heads * seq, d, 23);
    const submit: AttentionJobSubmit = {
      kind: 'attention',
      inputs: { q: await upload(heads, seq, d, Q), k: await upload(heads, seq, d, K), v: await upload(heads, seq, d, V) },
      causal,
      replication: 2,
      blockRows,
    };
    const plan = await attention.plan(submit, temp.shards);
    const block = Math.min(seq, blockRows ?? seq);
    expect(plan.workUnits).toHaveLength(heads * Math.ceil(seq / block));
    expect(plan.resultShape).toEqual([heads, seq, d]);
    const pairs = causal ? (seq * (seq + 1)) / 2 : seq * seq;
    expect(plan.workUnits.reduce((s, u) => s + u.flops, 0)).toBe(heads * 4 * d * pairs);

    const job = { meta: plan.meta } as JobRecord;
    const outputs: { wu: WorkUnitRecord; output: Float32Array }[] = [];
    for (const [idx, u] of plan.workUnits.entries()) {
      const wu = { ...u, id: `j.${idx}`, jobId: 'j', idx, kind: 'attention', target: 2, state: 'open', canonicalResultId: null } as WorkUnitRecord;
      const [q, k, v] = await Promise.all(['q', 'k', 'v'].map(async (name) => parseNpy((await temp.shards.get(wu.inputs[name]))!)));
      const p = wu.params as AttentionParams;
      expect(q.shape).toEqual([p.rows, d]);
      expect(k.shape).toEqual([seq, d]);
      const output = float32Attention(q.data, k.data, v.data, p);
      expect(wu.outputBytes).toBe(output.byteLength);
      expect(await attention.check(wu, output, temp.shards)).toBe(true);
      const wrong = output.map((x) => x * 1.01 + 0.01);
      expect(await attention.check(wu, wrong, temp.shards)).toBe(false);
      outputs.push({ wu, output });
    }
    const result = parseNpy(attention.assimilate(job, outputs.reverse()));
    expect(result.shape).toEqual([heads, seq, d]);
    const reference = threePassHeads(Q, K, V, heads, seq, d, causal);
    let err = 0;
    for (let i = 0; i < reference.length; i++) err = Math.max(err, Math.abs(result.data[i] - reference[i]));
    expect(err).toBeLessThan(1e-5);
  });

  test.each([
    ['k has another shape', [2, 8, 64], [2, 9, 64], /inputs\.k: shape/],
    ['d is not 64 or 128', [1, 8, 32], [1, 8, 32], /head dimension d = 32/],
    ['a 2-D input', [8, 64], [8, 64], /inputs\.q: must have shape \[heads, seq, d\]/],
  ] as const)('rejects a submission where %s', async (_what, qShape, kShape, message) => {
    const put = (shape: readonly number[]) => temp.shards.put(toNpy(shape, new Float32Array(shape.reduce((a, b) => a * b, 1))));
    const submit: AttentionJobSubmit = { kind: 'attention', inputs: { q: await put(qShape), k: await put(kShape), v: await put(qShape) }, causal: false, replication: 2 };
    const err = await attention.plan(submit, temp.shards).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobInputError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('wire format', () => {
  const common = { id: 'j.0', jobId: 'j', inputs: { a: 'a'.repeat(64), b: 'b'.repeat(64) }, outputBytes: 16, flops: 8 };

  test('a matmul unit parses exactly as before', () => {
    const wu = { ...common, kind: 'matmul', params: { m: 2, k: 1, n: 2 } };
    expect(WorkUnitSpec.parse(wu)).toEqual(wu);
  });

  test('an attention unit carries attention params, and params of the wrong kind are refused', () => {
    const params = { seq: 40, rows: 16, q0: 16, d: 64, causal: true };
    const wu = { ...common, kind: 'attention', params };
    expect(WorkUnitSpec.parse(wu)).toEqual(wu);
    expect(WorkUnitSpec.safeParse({ ...common, kind: 'attention', params: { m: 2, k: 1, n: 2 } }).success).toBe(false);
    expect(WorkUnitSpec.safeParse({ ...common, kind: 'matmul', params }).success).toBe(false);
    expect(WorkUnitSpec.safeParse({ ...wu, params: { ...params, d: 96 } }).success).toBe(false);
  });

  test('an attention submission defaults to non-causal and refuses unknown fields', () => {
    const inputs = { q: 'a'.repeat(64), k: 'b'.repeat(64), v: 'c'.repeat(64) };
    const parsed = JobSubmit.parse({ kind: 'attention', inputs });
    expect(parsed).toMatchObject({ kind: 'attention', causal: false, replication: 2 });
    expect(JobSubmit.safeParse({ kind: 'attention', inputs, mask: 'causal' }).success).toBe(false);
    expect(JobSubmit.safeParse({ kind: 'attention', inputs: { q: inputs.q, k: inputs.k } }).success).toBe(false);
  });
});

describe('an attention job through the coordinator', () => {
  test('honest workers complete it, the result matches the reference, a cheater earns nothing', async () => {
    const grid = await startTestCoordinator();
    // Wrong in one row only: the random-row check or the replica comparison must catch it.
    const cheater = new SimWorker({
      url: grid.base,
      compute: (wu, inputs) => {
        const out = honestCompute(wu, inputs) as Float32Array;
        out[out.length - 1] += 0.5;
        return out;
      },
    });
    const workers = [new SimWorker({ url: grid.base, sumOrder: 'forward' }), new SimWorker({ url: grid.base, sumOrder: 'reverse' }), cheater];
    try {
      await Promise.all(workers.map((w) => w.connect()));
      const [heads, seq, d] = [2, 30, 64];
      const [Q, K, V] = [51, 52, 53].map((seed) => randomMatrix(heads * seq, d, seed));
      const [q, k, v] = await Promise.all([Q, K, V].map((t) => grid.uploadShard(toNpy([heads, seq, d], t))));
      const id = await grid.submitJob({ kind: 'attention', inputs: { q, k, v }, causal: true, blockRows: 8 });
      const status = await grid.waitForJob(id);
      expect(status.state).toBe('done');
      expect(status.progress.total).toBe(heads * 4);
      const out = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${id}/result`)).arrayBuffer()));
      expect(out.shape).toEqual([heads, seq, d]);
      // The honest workers compute in float32, in different key orders: the result is within the
      // job's tolerance of the independent float64 attention, head by head.
      const exact = threePassHeads(Q, K, V, heads, seq, d, true);
      const tol = attentionTolerance(params(seq, seq, d, true), maxAbs(Q), maxAbs(K), maxAbs(V));
      expect(compareWithin(out.data, Float32Array.from(exact), tol)).toEqual({ ok: true });
      expect(Array.from(out.data)).not.toEqual(Array.from(attentionReferenceHeads(Q, K, V, heads, seq, d, true))); // theirs, not the reference's bits
      const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
      const cheat = volunteers.find((x) => x.id === cheater.volunteerId)!;
      expect(cheat.credit).toBe(0);
      expect(cheat.results.valid).toBe(0);
      expect(volunteers.reduce((s, x) => s + x.credit, 0)).toBe(2 * heads * 4 * d * ((seq * (seq + 1)) / 2));
    } finally {
      for (const w of workers) w.close();
      await grid.stop();
    }
  });
});
