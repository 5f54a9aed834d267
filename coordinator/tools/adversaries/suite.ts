// The adversary suite: one matmul job over many small work units, computed by honest Node workers
// (float32, different summation orders, as different GPUs round) and a share of malicious ones
// (adversary-workers.ts), against a real coordinator on loopback. It measures what the trust
// machinery promises: no wrong result accepted, no credit to a cheater, honest credit intact, and
// the compute overhead (results computed ÷ work units needed).
import { STRATEGIES, adversaryOptions, type Strategy } from './workers.js';
import { U } from '../../jobs/matmul-check.js';
import { matmulReference } from '../../jobs/matmul.js';
import { verifyExport } from '../../ledger/export.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import type { LedgerExport, VolunteerSummary } from '../../protocol/index.js';
import { matmulParams, SimWorker, type Compute } from '../../testing/sim-worker.js';
import { float32Matmul, randomMatrix, startTestCoordinator } from '../../testing/helpers.js';
import type { TrustPolicy } from '../../work/trust.js';
import { compareWithin, DEFAULT_TOLERANCE } from '../../jobs/compare.js';

export interface SuiteOptions {
  /** At least this many work units (16×16 output tiles). */
  workUnits: number;
  honest: number;
  /** One adversary identity per entry ('collude' twice makes a colluding pair). */
  adversaries: Strategy[];
  /** Inner dimension of the product. */
  k?: number;
  seed?: number;
  timeoutMs?: number;
  trustPolicy?: TrustPolicy;
}

export interface SuiteReport {
  workUnits: number;
  honestWorkers: number;
  adversaryWorkers: number;
  adversaryShare: number;
  strategies: Strategy[];
  jobState: string;
  /** Work units whose accepted result is outside the validator tolerance of the float64 reference. */
  wrongAccepted: number;
  /** Net credit adversaries hold at the end, and all credit ever granted to them (before revocations). */
  adversaryCredit: number;
  adversaryCreditEverGranted: number;
  /** Every honest volunteer's credit equals FLOPs × its valid results, and none was revoked. */
  honestCreditIntact: boolean;
  /** Results computed (valid, invalid or pending, by anyone) ÷ work units needed. */
  overhead: number;
  /** Results computed by honest volunteers ÷ work units needed: what honesty costs them. */
  honestOverhead: number;
  resultsComputed: number;
  adversariesSuspended: number;
  ledgerEntries: number;
  ledgerVerified: boolean;
  seconds: number;
}

export const FULL_ADVERSARIES: Strategy[] = [...STRATEGIES.slice(0, 3), 'collude', ...STRATEGIES.slice(3)];
/** Honest identities beside FULL_ADVERSARIES, so that adversaries are 30% of all. */
export const FULL_HONEST = Math.round((FULL_ADVERSARIES.length * 0.7) / 0.3);

const TILE = 16;

/** An honest float32 worker, summing forwards or backwards. */
function honestFloat32(reverse: boolean): Compute {
  return (wu, { a, b }) => {
    const { m, k, n } = matmulParams(wu);
    return float32Matmul(a, b, m, k, n, { reverse });
  };
}

function maxAbs(t: Float32Array): number {
  let m = 0;
  for (const v of t) m = Math.max(m, Math.abs(v));
  return m;
}

/** Counts output tiles of `got` that fall outside the per-unit tolerance the job used. */
function countWrongTiles(got: Float32Array, ref: Float32Array, m: number, n: number, tol: { atol: number; rtol: number }): number {
  let wrong = 0;
  for (let r0 = 0; r0 < m; r0 += TILE) {
    for (let c0 = 0; c0 < n; c0 += TILE) {
      const tile = (t: Float32Array) => {
        const out = new Float32Array(TILE * TILE);
        for (let r = 0; r < TILE; r++) out.set(t.subarray((r0 + r) * n + c0, (r0 + r) * n + c0 + TILE), r * TILE);
        return out;
      };
      if (!compareWithin(tile(got), tile(ref), tol).ok) wrong++;
    }
  }
  return wrong;
}

export async function runAdversarySuite(opts: SuiteOptions): Promise<SuiteReport> {
  const started = Date.now();
  const k = opts.k ?? 32;
  const seed = opts.seed ?? 1;
  const rowTiles = Math.ceil(Math.sqrt(opts.workUnits));
  const colTiles = Math.ceil(opts.workUnits / rowTiles);
  const [m, n] = [rowTiles * TILE, colTiles * TILE];
  const workUnits = rowTiles * colTiles;
  const grid = await startTestCoordinator({
    trustPolicy: opts.trustPolicy,
    security: { wsMaxPerAddress: 1000, rateLimitPerMinute: 1_000_000 },
  });
  const workers: SimWorker[] = [];
  try {
    const a = randomMatrix(m, k, seed);
    const b = randomMatrix(k, n, seed + 1);
    const [shaA, shaB] = [await grid.uploadShard(toNpy([m, k], a)), await grid.uploadShard(toNpy([k, n], b))];

    const honest = Array.from({ length: opts.honest }, (_, i) => new SimWorker({ url: grid.base, name: `honest-${i}`, compute: honestFloat32(i % 2 === 1), slots: 2 }));
    const bad = opts.adversaries.map((s, i) => new SimWorker({ url: grid.base, name: `adversary-${s}-${i}`, slots: 2, ...adversaryOptions(s) }));
    workers.push(...honest, ...bad);
    // Interleave connections so adversaries are in the queue from the start.
    for (let i = 0; i < workers.length; i++) {
      const w = i % 2 === 0 ? honest.shift() ?? bad.shift() : bad.shift() ?? honest.shift();
      if (w) await w.connect();
    }
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a: shaA, b: shaB }, tile: { rows: TILE, cols: TILE }, replication: 2 });
    const status = await grid.waitForJob(jobId, opts.timeoutMs ?? 300_000);

    const ref = matmulReference(a, b, m, k, n);
    let wrongAccepted = workUnits;
    if (status.state === 'done') {
      const got = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/result`)).arrayBuffer())).data;
      const tol = { atol: Math.max(DEFAULT_TOLERANCE.atol, 2 * k * U * maxAbs(a) * maxAbs(b)), rtol: DEFAULT_TOLERANCE.rtol };
      wrongAccepted = countWrongTiles(got, ref, m, n, tol);
    }

    const adversaryIds = new Set(workers.slice(opts.honest).map((w) => w.volunteerId));
    const honestIds = new Set(workers.slice(0, opts.honest).map((w) => w.volunteerId));
    const { volunteers } = (await (await grid.api('/api/volunteers')).json()) as { volunteers: VolunteerSummary[] };
    const ledger = (await (await grid.api('/api/ledger/export')).json()) as LedgerExport;
    const flopsPerWu = 2 * TILE * TILE * k;
    let adversaryCredit = 0;
    let resultsComputed = 0;
    let honestResults = 0;
    let honestCreditIntact = true;
    for (const v of volunteers) {
      const computed = v.results.valid + v.results.invalid + v.results.pending;
      resultsComputed += computed;
      if (adversaryIds.has(v.id)) adversaryCredit += v.credit;
      if (honestIds.has(v.id)) {
        honestResults += computed;
        if (v.credit !== v.results.valid * flopsPerWu) honestCreditIntact = false;
      }
    }
    const adversaryCreditEverGranted = ledger.entries.filter((e) => adversaryIds.has(e.volunteerId) && e.amount > 0).reduce((s, e) => s + e.amount, 0);
    if (ledger.entries.some((e) => honestIds.has(e.volunteerId) && e.amount < 0)) honestCreditIntact = false;
    return {
      workUnits,
      honestWorkers: opts.honest,
      adversaryWorkers: opts.adversaries.length,
      adversaryShare: opts.adversaries.length / (opts.honest + opts.adversaries.length),
      strategies: opts.adversaries,
      jobState: status.state,
      wrongAccepted,
      adversaryCredit,
      adversaryCreditEverGranted,
      honestCreditIntact,
      overhead: resultsComputed / workUnits,
      honestOverhead: honestResults / workUnits,
      resultsComputed,
      adversariesSuspended: workers.slice(opts.honest).filter((w) => w.closed !== null).length,
      ledgerEntries: ledger.entries.length,
      ledgerVerified: verifyExport(ledger).ok,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    for (const w of workers) w.close();
    await grid.stop();
  }
}
