// Training bench: sim workers (Node, the real protocol, the float32 CPU reference; all in this one
// process, so they compute one at a time: read `fleetUtilisation`) train the MLP on a
// synthetic task against a coordinator on 127.0.0.1 in this process, once all honest and once with a
// share of adversaries (sign-flipped ×10 Δs with forged, matching losses: they pass the cheap check
// and are left to replication). Prints JSON: rounds per minute, per-volunteer utilisation (compute
// time ÷ wall time), coordinator bytes per round (sim workers have no WebRTC: every shard byte comes
// from the coordinator), final loss ÷ the central float64 reference's, what the adversaries earned
// and how their updates were stopped; and an honest run with int8 Δs against the float32 one.
//   npm run bench:train -- [--workers 6] [--rounds 10] [--steps 50] [--units 8] [--batch 64]
//     [--hidden 64] [--replication 2] [--adversaries 0.3]
import { parseArgs } from 'node:util';
import { centralReference } from '../coordinator/jobs/train.js';
import { TrainJobSubmit, type JobStatus, type LedgerEntry, type MlpTrainParams, type RoundStats } from '../coordinator/protocol/index.js';
import { toNpy } from '../coordinator/protocol/npy.js';
import { checkRows } from '../coordinator/protocol/train-loop.js';
import { mlpLossGrad } from '../coordinator/protocol/train-mlp.js';
import { startTestCoordinator } from '../coordinator/testing/helpers.js';
import { honestCompute, SimWorker, type Compute } from '../coordinator/testing/sim-worker.js';
import { blobsTask } from '../coordinator/testing/train-task.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '6' },
    rounds: { type: 'string', default: '10' },
    steps: { type: 'string', default: '50' },
    units: { type: 'string', default: '8' },
    batch: { type: 'string', default: '64' },
    hidden: { type: 'string', default: '64' },
    replication: { type: 'string', default: '2' },
    adversaries: { type: 'string', default: '0.3' },
  },
});
const WORKERS = Number(values.workers);
const FEATURES = 16;
const CLASSES = 4;
const task = blobsTask(4096, FEATURES, CLASSES, 3, 1.5);

/** Sign-flipped ×10 with the check loss recomputed for the flipped update (so the check passes). */
const forge: Compute = (wu, inputs) => {
  const out = honestCompute(wu, inputs) as Float32Array;
  const p = wu.params as MlpTrainParams;
  const P = out.length - 2;
  const after = new Float32Array(P);
  for (let i = 0; i < P; i++) {
    out[i] = -10 * out[i];
    after[i] = inputs.params[i] - out[i];
  }
  out[P + 1] = mlpLossGrad(Float32Array, p.layers, after, inputs.x, inputs.y, checkRows(p.rows, p.batchSize, p.seed), null);
  return out;
};

async function run(adversaryShare: number, compress: 'none' | 'int8' = 'none') {
  const grid = await startTestCoordinator({ leaseMs: 60_000 });
  const workers: { w: SimWorker; bad: boolean; computeMs: number }[] = [];
  try {
    const bad = Math.round(adversaryShare * WORKERS);
    for (let i = 0; i < WORKERS; i++) {
      const entry = { w: null as unknown as SimWorker, bad: i < bad, computeMs: 0 };
      const inner = entry.bad ? forge : honestCompute;
      const timed: Compute = (wu, inputs) => {
        const t0 = performance.now();
        const out = inner(wu, inputs) as Float32Array;
        entry.computeMs += performance.now() - t0;
        return out;
      };
      entry.w = new SimWorker({ url: grid.base, kinds: ['train'], compute: timed, keepMessages: false });
      await entry.w.connect();
      workers.push(entry);
    }
    const body = {
      kind: 'train',
      model: { type: 'mlp', layers: [FEATURES, Number(values.hidden), CLASSES] },
      data: { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) },
      rounds: Number(values.rounds),
      localSteps: Number(values.steps),
      batchSize: Number(values.batch),
      innerOptimizer: { type: 'adamw', lr: 0.003 },
      unitsPerRound: Number(values.units),
      replication: Number(values.replication),
      compress,
    };
    const p2pBefore = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
    const t0 = performance.now();
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 600_000)) as JobStatus & { perRound: RoundStats[] };
    const wallMs = performance.now() - t0;
    if (status.state !== 'done') throw new Error(`job ${status.state}: ${status.error}`);
    const p2pAfter = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
    const ref = centralReference(TrainJobSubmit.parse(body), task);
    const { entries } = (await (await grid.api('/api/ledger?limit=1000')).json()) as { entries: LedgerEntry[] };
    const badIds = new Set(workers.filter((w) => w.bad).map((w) => w.w.volunteerId));
    const final = status.perRound.at(-1)!.loss;
    const rounds = status.perRound.length;
    return {
      workers: WORKERS,
      adversaries: badIds.size,
      rounds,
      roundsPerMinute: +((60_000 * rounds) / wallMs).toFixed(1),
      // Every sim worker shares this process's one event loop with the coordinator, so units run one at
      // a time: a worker's share is at most 1/workers. The fleet's is the one to read: how much of the
      // wall time went to inner steps rather than the coordinator, transfers and waiting.
      utilisation: workers.filter((w) => !w.bad).map((w) => +(w.computeMs / wallMs).toFixed(3)),
      fleetUtilisation: +(workers.reduce((s, w) => s + w.computeMs, 0) / wallMs).toFixed(3),
      coordinatorBytesPerRound: Math.round((p2pAfter - p2pBefore) / rounds),
      peerBytesPerRound: 0,
      deltaBytesPerRound: Math.round(status.perRound.reduce((s, r) => s + r.bytes, 0) / rounds),
      loss: { start: +ref.losses[0].toFixed(4), final: +final.toFixed(4), centralReference: +ref.losses.at(-1)!.toFixed(4), ratio: +(final / ref.losses.at(-1)!).toFixed(4) },
      adversaryCredit: entries.filter((e) => badIds.has(e.volunteerId)).reduce((s, e) => s + e.amount, 0),
      // Forged updates pass the check by construction: replicas disagreeing with a quorum is what stops them.
      caughtByCheck: grid.logs.filter((l) => /failed the independent check/.test(l)).length,
      caughtByReplication: await disagreements(grid.base, badIds),
      unitsDropped: status.perRound.reduce((s, r) => s + r.dropped, 0),
    };
  } finally {
    for (const { w } of workers) w.close();
    await grid.stop();
  }
}

/** Results of the adversaries' that a quorum outvoted (invalid without a failed check). */
async function disagreements(base: string, bad: Set<string>): Promise<number> {
  const { volunteers } = (await (await fetch(`${base}/api/volunteers`)).json()) as { volunteers: { id: string; results: { invalid: number } }[] };
  return volunteers.filter((v) => bad.has(v.id)).reduce((s, v) => s + v.results.invalid, 0);
}

const honest = await run(0);
const attacked = Number(values.adversaries) > 0 ? await run(Number(values.adversaries)) : null;
const int8 = await run(0, 'int8');
console.log(
  JSON.stringify(
    {
      bench: 'train',
      task: { rows: task.n, features: FEATURES, classes: CLASSES, layers: [FEATURES, Number(values.hidden), CLASSES], localSteps: Number(values.steps), batchSize: Number(values.batch), unitsPerRound: Number(values.units), replication: Number(values.replication) },
      honest,
      withAdversaries: attacked,
      int8VsFp32: {
        deltaBytesPerRound: { int8: int8.deltaBytesPerRound, fp32: honest.deltaBytesPerRound },
        finalLoss: { int8: int8.loss.final, fp32: honest.loss.final },
        roundsPerMinute: { int8: int8.roundsPerMinute, fp32: honest.roundsPerMinute },
      },
    },
    null,
    2,
  ),
);
process.exit(0);
