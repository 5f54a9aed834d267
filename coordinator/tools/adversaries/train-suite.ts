// The training adversary suite: one train job (DiLoCo over an MLP, replication 2) computed by honest
// sim workers and a 30% share of adversaries of the five kinds in train-workers.ts, against a real
// coordinator on loopback; then the same job by the honest workers alone. It reports, per adversary
// kind, the results it sent and what stopped each one — the cheap check, replication (outvoted by an
// agreeing quorum), the audit (a quorum the coordinator recomputed and found forged), or nothing
// (accepted: only the robust aggregator bounds it) — the credit it earned, and the final loss
// against the all-honest run's.
import { join } from 'node:path';
import { centralReference } from '../../jobs/train.js';
import { verifyExport } from '../../ledger/export.js';
import { TrainJobSubmit, type JobStatus, type LedgerExport, type RoundStats } from '../../protocol/index.js';
import { toNpy } from '../../protocol/npy.js';
import { SqliteStore } from '../../store/sqlite/store.js';
import { startTestCoordinator } from '../../testing/helpers.js';
import { honestCompute, SimWorker } from '../../testing/sim-worker.js';
import { blobsTask } from '../../testing/train-task.js';
import type { TrustPolicy } from '../../work/trust.js';
import { trainAdversaryOptions, type TrainStrategy } from './train-workers.js';

export interface TrainSuiteOptions {
  honest: number;
  /** One adversary identity per entry ('collude' twice makes a colluding pair). */
  adversaries: TrainStrategy[];
  rounds?: number;
  unitsPerRound?: number;
  localSteps?: number;
  hidden?: number;
  seed?: number;
  timeoutMs?: number;
  trustPolicy?: TrustPolicy;
}

/** What became of one adversary kind's results. */
export interface KindReport {
  identities: number;
  /** Results it sent that the coordinator stored (a unit it gave up or a lease it lost is not one). */
  unitsSent: number;
  caughtByCheck: number;
  caughtByReplication: number;
  caughtByAudit: number;
  /** Valid: no check, replica or audit stopped it; only the aggregator bounds what it does. */
  accepted: number;
  /** Made invalid otherwise (its round closed without it, revoked with its host) or still pending. */
  other: number;
  /** Net credit its identities hold at the end, and all credit ever granted to them. */
  credit: number;
  creditEverGranted: number;
  suspended: number;
}

export interface TrainSuiteReport {
  honestWorkers: number;
  adversaryWorkers: number;
  adversaryShare: number;
  task: { layers: number[]; rounds: number; unitsPerRound: number; localSteps: number; replication: number };
  jobState: string;
  byKind: Partial<Record<TrainStrategy, KindReport>>;
  adversaryCredit: number;
  adversaryCreditEverGranted: number;
  /** Every honest identity holds its validated units' FLOPs, each unit credited once per identity. */
  honestCreditExact: boolean;
  loss: { start: number; honest: number; attacked: number; centralReference: number; ratio: number };
  ledgerVerified: boolean;
  seconds: number;
}

const FEATURES = 16;
const CLASSES = 4;

function jobBody(o: Required<Pick<TrainSuiteOptions, 'rounds' | 'unitsPerRound' | 'localSteps' | 'hidden' | 'seed'>>, data: { x: string; y: string }) {
  return {
    kind: 'train',
    model: { type: 'mlp', layers: [FEATURES, o.hidden, CLASSES] },
    data,
    rounds: o.rounds,
    localSteps: o.localSteps,
    batchSize: 32,
    innerOptimizer: { type: 'adamw', lr: 0.003 },
    unitsPerRound: o.unitsPerRound,
    replication: 2,
    seed: o.seed,
  };
}

/** How many of a volunteer's results ended in this state for this reason. */
export type ResultOutcome = { v: string; state: string; reason: string | null; n: number };

/** What became of each adversary kind's results, from the database's outcomes and the ledger. */
export function kindReports(
  bad: { s: TrainStrategy; id: string; closed: { reason: string } | null }[],
  outcomes: ResultOutcome[],
  entries: { volunteerId: string; amount: number }[],
): Partial<Record<TrainStrategy, KindReport>> {
  const byKind: Partial<Record<TrainStrategy, KindReport>> = {};
  for (const { s, id, closed } of bad) {
    const k = (byKind[s] ??= { identities: 0, unitsSent: 0, caughtByCheck: 0, caughtByReplication: 0, caughtByAudit: 0, accepted: 0, other: 0, credit: 0, creditEverGranted: 0, suspended: 0 });
    k.identities++;
    for (const r of outcomes.filter((r) => r.v === id)) {
      k.unitsSent += r.n;
      if (r.state === 'valid') k.accepted += r.n;
      else if (r.reason === 'failed the independent check') k.caughtByCheck += r.n;
      else if (r.reason === 'disagreed with the quorum') k.caughtByReplication += r.n;
      else if (/audit/.test(r.reason ?? '')) k.caughtByAudit += r.n;
      else k.other += r.n;
    }
    const mine = entries.filter((e) => e.volunteerId === id);
    k.credit += mine.reduce((a, e) => a + e.amount, 0);
    k.creditEverGranted += mine.filter((e) => e.amount > 0).reduce((a, e) => a + e.amount, 0);
    if (/suspended/.test(closed?.reason ?? '')) k.suspended++;
  }
  return byKind;
}

/** Results by volunteer, state and reason, read from the coordinator's database. */
export async function resultOutcomes(dir: string): Promise<ResultOutcome[]> {
  const store = new SqliteStore(join(dir, 'tabgrid.sqlite'));
  try {
    return store.db.prepare(`SELECT volunteer_id AS v, state, reason, COUNT(*) AS n FROM results GROUP BY volunteer_id, state, reason`).all() as ResultOutcome[];
  } finally {
    await store.close();
  }
}

async function trainOnce(opts: TrainSuiteOptions, withAdversaries: boolean) {
  const o = { rounds: opts.rounds ?? 6, unitsPerRound: opts.unitsPerRound ?? 6, localSteps: opts.localSteps ?? 20, hidden: opts.hidden ?? 32, seed: opts.seed ?? 1 };
  const task = blobsTask(2048, FEATURES, CLASSES, o.seed, 4); // overlapping classes: the loss stays well above 0
  const grid = await startTestCoordinator({ leaseMs: 60_000, trustPolicy: opts.trustPolicy, security: { wsMaxPerAddress: 1000, rateLimitPerMinute: 1_000_000 } });
  const honest = Array.from({ length: opts.honest }, (_, i) => new SimWorker({ url: grid.base, name: `honest-${i}`, kinds: ['train'], compute: honestCompute, keepMessages: false }));
  const bad = withAdversaries ? opts.adversaries.map((s, i) => ({ s, w: new SimWorker({ url: grid.base, name: `adversary-${s}-${i}`, kinds: ['train'], keepMessages: false, ...trainAdversaryOptions(s) }) })) : [];
  try {
    // The colluders first, side by side: the first units' two replicas go to the first two workers
    // to ask, so the pair draws one unit together. The rest interleaved, adversaries in the queue from the start.
    const order: SimWorker[] = bad.filter((x) => x.s === 'collude').map((x) => x.w);
    const [h, b] = [[...honest], bad.filter((x) => x.s !== 'collude').map((x) => x.w)];
    while (h.length || b.length) order.push(...[h.shift(), b.shift(), h.shift()].filter((w): w is SimWorker => !!w));
    for (const w of order) await w.connect();
    const data = { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) };
    const body = jobBody(o, data);
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, opts.timeoutMs ?? 300_000)) as JobStatus & { perRound?: RoundStats[] };
    const ledger = (await (await grid.api('/api/ledger/export')).json()) as LedgerExport;
    const outcomes = await resultOutcomes(grid.dir);
    return { status, body, task, ledger, outcomes, honestIds: new Set(honest.map((w) => w.volunteerId)), bad: bad.map(({ s, w }) => ({ s, id: w.volunteerId, closed: w.closed })), o };
  } finally {
    for (const w of [...honest, ...bad.map((x) => x.w)]) w.close();
    await grid.stop();
  }
}

export async function runTrainAdversarySuite(opts: TrainSuiteOptions): Promise<TrainSuiteReport> {
  const started = Date.now();
  const attacked = await trainOnce(opts, true);
  const honestRun = await trainOnce(opts, false);
  const byKind = kindReports(attacked.bad, attacked.outcomes, attacked.ledger.entries);
  const flops = new Map<string, number>(); // per unit
  const credited = new Map<string, number>();
  for (const e of attacked.ledger.entries) {
    credited.set(e.volunteerId, (credited.get(e.volunteerId) ?? 0) + e.amount);
    if (e.amount > 0) flops.set(e.wuId, e.amount);
  }
  // Honest credit: each validated result's unit FLOPs, once per (unit, identity), nothing taken back.
  let honestCreditExact = attacked.ledger.entries.every((e) => !attacked.honestIds.has(e.volunteerId) || e.amount > 0);
  const pairs = attacked.ledger.entries.filter((e) => attacked.honestIds.has(e.volunteerId)).map((e) => `${e.wuId} ${e.volunteerId}`);
  if (new Set(pairs).size !== pairs.length) honestCreditExact = false;
  for (const v of attacked.honestIds) {
    const valid = attacked.outcomes.filter((r) => r.v === v && r.state === 'valid').reduce((a, r) => a + r.n, 0);
    const perUnit = [...flops.values()][0] ?? 0; // every unit of the job has the same FLOPs
    if ((credited.get(v) ?? 0) !== valid * perUnit) honestCreditExact = false;
  }
  const kinds = Object.values(byKind);
  const final = (s: typeof attacked.status) => s.perRound?.at(-1)?.loss ?? NaN;
  const ref = centralReference(TrainJobSubmit.parse(attacked.body), attacked.task);
  const share = opts.adversaries.length / (opts.honest + opts.adversaries.length);
  return {
    honestWorkers: opts.honest,
    adversaryWorkers: opts.adversaries.length,
    adversaryShare: +share.toFixed(3),
    task: { layers: [FEATURES, attacked.o.hidden, CLASSES], rounds: attacked.o.rounds, unitsPerRound: attacked.o.unitsPerRound, localSteps: attacked.o.localSteps, replication: 2 },
    jobState: attacked.status.state,
    byKind,
    adversaryCredit: kinds.reduce((a, k) => a + k.credit, 0),
    adversaryCreditEverGranted: kinds.reduce((a, k) => a + k.creditEverGranted, 0),
    honestCreditExact,
    loss: {
      start: +ref.losses[0].toPrecision(5),
      honest: +final(honestRun.status).toPrecision(5),
      attacked: +final(attacked.status).toPrecision(5),
      centralReference: +ref.losses.at(-1)!.toPrecision(5),
      ratio: +(final(attacked.status) / final(honestRun.status)).toFixed(4),
    },
    ledgerVerified: verifyExport(attacked.ledger).ok,
    seconds: (Date.now() - started) / 1000,
  };
}

/** The suite's promises: the job finishes, adversaries hold and were granted nothing, loss within 5%. */
export function trainSuiteBroken(r: TrainSuiteReport): boolean {
  return r.jobState !== 'done' || r.adversaryCredit !== 0 || r.adversaryCreditEverGranted !== 0 || !r.honestCreditExact || !r.ledgerVerified || !(Math.abs(r.loss.ratio - 1) <= 0.05);
}
