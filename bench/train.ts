// Training bench: sim workers (Node, the real protocol, the float32 CPU reference), each in a process
// of its own by default (--processes false: all in this one, computing one at a time), train the MLP
// on a synthetic task against a coordinator on 127.0.0.1 in this process — once all honest, once with
// a share of adversaries of mixed kinds (coordinator/tools/adversaries/train-workers.ts: a colluding
// pair first, then sign-flipped ×10, stale-round, random, zero), and once honest with int8 Δs.
// Prints JSON: rounds per minute, per-volunteer utilisation (compute time ÷ wall time), coordinator
// bytes per round (sim workers have no WebRTC: every shard byte comes from the coordinator;
// bench/train-p2p.ts measures native volunteers with real peers), final
// loss ÷ the central float64 reference's, what the adversaries earned and what stopped them (check,
// replication, audit) per kind; and the int8 run against the float32 one.
// Utilisation is CPU time spent in inner steps ÷ wall time, per honest volunteer and for the fleet.
//   npm run bench:train -- [--workers 10] [--rounds 10] [--steps 50] [--units 8] [--batch 64]
//     [--hidden 64] [--replication 2] [--adversaries 0.3] [--processes true] [--model mlp|lm]
import { parseArgs } from 'node:util';
import type { JobStatus, LedgerExport, RoundStats } from '../coordinator/protocol/index.js';
import { startTestCoordinator } from '../coordinator/testing/helpers.js';
import { kindReports, resultOutcomes } from '../coordinator/tools/adversaries/train-suite.js';
import type { TrainStrategy } from '../coordinator/tools/adversaries/train-workers.js';
import { describeTask, lossFigures, trainJobBody, SHAPE_OPTIONS, shapeFrom } from './train-job.js';
import { childVolunteer, inProcessVolunteer, type Role, type Volunteer } from './train-volunteer.js';

const { values } = parseArgs({
  options: {
    ...SHAPE_OPTIONS,
    workers: { type: 'string', default: '10' },
    adversaries: { type: 'string', default: '0.3' },
    processes: { type: 'string', default: 'true' },
  },
});
const WORKERS = Number(values.workers);
const PROCESSES = values.processes !== 'false';
/** Adversary kinds in the order they join: the pair first, so that 2 adversaries are the colluding pair. */
const MIXED: TrainStrategy[] = ['collude', 'collude', 'sign-flip', 'stale', 'random', 'zero'];
const shape = shapeFrom(values);

async function run(adversaryShare: number, compress: 'none' | 'int8' = 'none') {
  const grid = await startTestCoordinator({ leaseMs: 60_000 });
  const volunteers: Volunteer[] = [];
  try {
    const bad = Math.round(adversaryShare * WORKERS);
    // Adversaries first (the colluding pair side by side draws one unit together), then the honest.
    const roles: Role[] = [...Array.from({ length: bad }, (_, i) => MIXED[i % MIXED.length]), ...Array.from({ length: WORKERS - bad }, () => 'honest' as const)];
    for (const role of roles) volunteers.push(await (PROCESSES ? childVolunteer : inProcessVolunteer)(grid.base, role));
    const body = await trainJobBody(grid, shape, compress);
    const p2pBefore = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
    const t0 = performance.now();
    const id = await grid.submitJob(body);
    const status = (await grid.waitForJob(id, 600_000)) as JobStatus & { perRound: RoundStats[] };
    const wallMs = performance.now() - t0;
    if (status.state !== 'done') throw new Error(`job ${status.state}: ${status.error}`);
    const p2pAfter = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
    const reports = await Promise.all(volunteers.splice(0).map(async (v) => ({ role: v.role, ...(await v.stop()) })));
    const ledger = (await (await grid.api('/api/ledger/export')).json()) as LedgerExport;
    const adversaries = reports.filter((r) => r.role !== 'honest').map((r) => ({ s: r.role as TrainStrategy, id: r.volunteerId, closed: r.closed }));
    const byKind = kindReports(adversaries, await resultOutcomes(grid.dir), ledger.entries);
    const rounds = status.perRound.length;
    return {
      workers: WORKERS,
      processes: PROCESSES,
      adversaries: adversaries.length,
      rounds,
      roundsPerMinute: +((60_000 * rounds) / wallMs).toFixed(1),
      // Each honest volunteer's CPU time in inner steps ÷ wall time. In processes of their own they
      // share the machine's cores with each other and the coordinator, so the fleet's total is at most
      // the cores; in one process they share one event loop, each at most 1/workers.
      utilisation: reports.filter((r) => r.role === 'honest').map((r) => +(r.computeMs / wallMs).toFixed(3)),
      fleetUtilisation: +(reports.reduce((s, r) => s + r.computeMs, 0) / wallMs).toFixed(3),
      coordinatorBytesPerRound: Math.round((p2pAfter - p2pBefore) / rounds),
      peerBytesPerRound: 0,
      deltaBytesPerRound: Math.round(status.perRound.reduce((s, r) => s + r.bytes, 0) / rounds),
      loss: lossFigures(body, status.perRound),
      adversaryCredit: Object.values(byKind).reduce((s, k) => s + k.credit, 0),
      adversaryCreditEverGranted: Object.values(byKind).reduce((s, k) => s + k.creditEverGranted, 0),
      // Per kind: results sent, and what stopped them (the check, replication, the audit) or not (accepted).
      byKind,
      unitsDropped: status.perRound.reduce((s, r) => s + r.dropped, 0),
      // Quorums the coordinator recomputed before they settled (every one with a new identity, then a sample).
      audits: { ...grid.c.auditStats(), units: status.perRound.reduce((s, r) => s + r.planned, 0) },
    };
  } finally {
    await Promise.all(volunteers.map((v) => v.stop().catch(() => undefined)));
    await grid.stop();
  }
}

const honest = await run(0);
const attacked = Number(values.adversaries) > 0 ? await run(Number(values.adversaries)) : null;
const int8 = await run(0, 'int8');
console.log(
  JSON.stringify(
    {
      bench: 'train',
      task: describeTask(shape),
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
