// Training with real peers: N native volunteers (`npm run volunteers -- --native --backend cpu`, each
// a process of its own: the page's CoordinatorClient in Node, WebRTC by node-datachannel, the TS
// training loop) train the bench's MLP, or with --model lm its transformer LM (--hidden is then
// dModel; bench/train-job.ts), against a coordinator on 127.0.0.1 in this process — once with
// peer-to-peer on and, for comparison, once with --no-p2p (every shard byte from the coordinator).
// Prints JSON: per round, shard bytes from peers and from the coordinator as the volunteers report
// them per lease ('shard-traffic', counted by the round of the unit that fetched them: the job's
// shardTraffic.byRound) and the bytes the coordinator itself counted sending (GET /shards, sampled
// while the round was open); rounds per minute; each volunteer's utilisation (CPU time computing ÷
// the job's wall time, from the stats file it writes on exit: --stats) and what it served to peers;
// the final loss ÷ the central reference's.
//   npm run bench:train-p2p -- [--native 4] [--rounds 10] [--steps 50] [--units 8] [--batch 64]
//     [--hidden 64] [--replication 2] [--compare true] [--model mlp|lm]
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { JobStatus } from '../coordinator/protocol/index.js';
import { toNpy } from '../coordinator/protocol/npy.js';
import { makeTempDir, removeDir, sleep, startTestCoordinator, type TestCoordinator } from '../coordinator/testing/helpers.js';
import type { NativeVolunteerStats } from '../coordinator/tools/native-volunteer/volunteer.js';
import { describeTask, lossFigures, parameterCount, trainJobBody, SHAPE_OPTIONS, shapeFrom } from './train-job.js';

const { values } = parseArgs({
  options: {
    ...SHAPE_OPTIONS,
    native: { type: 'string', default: '4' },
    compare: { type: 'string', default: 'true' },
  },
});
const N = Number(values.native);
const shape = shapeFrom(values);
const ROOT = resolve(import.meta.dirname, '..');

interface P2pSnapshot {
  coordinatorShardBytes: number;
  peers: { ready: boolean }[];
}

/** One native volunteer process; `stop` sends SIGTERM and reads the stats it wrote on the way out. */
function startVolunteer(url: string, dir: string, p2p: boolean) {
  const statsFile = join(dir, 'stats.json');
  const args = ['--import', 'tsx', join(ROOT, 'coordinator/tools/headless-volunteers.ts'), '--native', '--coordinator', url, '--state', dir, '--stats', statsFile];
  const child: ChildProcess = spawn(process.execPath, [...args, '--backend', 'cpu', '--no-tune', '--interval', '0', ...(p2p ? [] : ['--no-p2p'])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    output: () => out,
    async stop(): Promise<NativeVolunteerStats> {
      child.kill('SIGTERM');
      const code = await Promise.race([exited, sleep(10_000).then(() => 'still running')]);
      if (code !== 0) {
        child.kill('SIGKILL');
        throw new Error(`a native volunteer exited with ${code}:\n${out}`);
      }
      return (JSON.parse(readFileSync(statsFile, 'utf8')) as { volunteers: NativeVolunteerStats[] }).volunteers[0];
    },
    kill: () => child.kill('SIGKILL'),
  };
}

async function p2pSnapshot(grid: TestCoordinator): Promise<P2pSnapshot> {
  return (await (await grid.api('/api/p2p')).json()) as P2pSnapshot;
}

async function run(p2p: boolean) {
  const grid = await startTestCoordinator({ leaseMs: 60_000 });
  const state = makeTempDir('tabgrid-bench-train-p2p-');
  const fleet = Array.from({ length: N }, (_, i) => startVolunteer(grid.base, join(state, `v${i}`), p2p));
  try {
    // Every volunteer connected (and in the swarm) before the job: the figures are the job's.
    for (const until = Date.now() + 120_000; ; await sleep(200)) {
      const peers = (await p2pSnapshot(grid)).peers;
      if (peers.length >= N && (!p2p || peers.filter((p) => p.ready).length >= N)) break;
      if (Date.now() > until) throw new Error(`the volunteers did not all connect:\n${fleet.map((v) => v.output()).join('\n')}`);
    }
    const body = await trainJobBody(grid, shape);
    const t0 = performance.now();
    const submittedAt = Date.now();
    const id = await grid.submitJob(body);
    // The coordinator's own count of shard bytes sent, attributed to the round open when sampled.
    const sent = new Map<number, number>();
    let sentBefore = (await p2pSnapshot(grid)).coordinatorShardBytes;
    let status: JobStatus;
    for (;;) {
      status = (await (await grid.api(`/api/jobs/${id}`)).json()) as JobStatus;
      const now = (await p2pSnapshot(grid)).coordinatorShardBytes;
      const round = Math.min(status.round ?? 0, shape.rounds - 1);
      sent.set(round, (sent.get(round) ?? 0) + now - sentBefore);
      sentBefore = now;
      if (status.state === 'done' || status.state === 'failed') break;
      if (performance.now() - t0 > 600_000) throw new Error(`job ${id} still ${status.state} after 10 minutes`);
      await sleep(100);
    }
    const wallMs = performance.now() - t0;
    if (status.state !== 'done') throw new Error(`job ${status.state}: ${status.error}`);
    const stats = await Promise.all(fleet.map((v) => v.stop()));
    const perRound = status.perRound!;
    const traffic = status.shardTraffic ?? { fromPeers: 0, fromCoordinator: 0 };
    const byRound = new Map((traffic.byRound ?? []).map((r) => [r.round, r]));
    const rounds = perRound.length;
    const total = (f: (s: NativeVolunteerStats) => number) => stats.reduce((s, v) => s + f(v), 0);
    return {
      volunteers: N,
      p2p,
      rounds,
      roundsPerMinute: +((60_000 * rounds) / wallMs).toFixed(1),
      // Seconds from the job's submission (round 0) or the previous round's close to this round's close.
      roundSeconds: perRound.map((r, i) => +((r.closedAt - (i ? perRound[i - 1].closedAt : submittedAt)) / 1000).toFixed(2)),
      // Shard bytes per round: as reported per lease (by the round of its unit), and as the coordinator counted sending them.
      perRound: perRound.map((r) => ({
        round: r.round,
        fromPeers: byRound.get(r.round)?.fromPeers ?? 0,
        fromCoordinator: byRound.get(r.round)?.fromCoordinator ?? 0,
        coordinatorSent: sent.get(r.round) ?? 0,
        loss: +r.loss.toFixed(4),
      })),
      coordinatorBytesPerRound: Math.round(traffic.fromCoordinator / rounds),
      peerBytesPerRound: Math.round(traffic.fromPeers / rounds),
      // The share of the volunteers' shard bytes that peers served.
      peerShare: +(traffic.fromPeers / Math.max(1, traffic.fromPeers + traffic.fromCoordinator)).toFixed(3),
      coordinatorSentPerRound: Math.round([...sent.values()].reduce((s, b) => s + b, 0) / rounds),
      parameterShardBytes: toNpy([parameterCount(shape)], new Float32Array(parameterCount(shape))).length,
      // Each volunteer's CPU time computing units ÷ the job's wall time; N processes share the machine's cores with the coordinator.
      utilisation: stats.map((s) => +(s.computeCpuMs / wallMs).toFixed(3)),
      fleetUtilisation: +(total((s) => s.computeCpuMs) / wallMs).toFixed(3),
      unitsPerVolunteer: stats.map((s) => s.units),
      servedToPeers: stats.map((s) => s.traffic.servedToPeers),
      peerFailures: total((s) => s.traffic.peerFailures),
      loss: lossFigures(body, perRound),
      unitsDropped: perRound.reduce((s, r) => s + r.dropped, 0),
    };
  } finally {
    for (const v of fleet) v.kill();
    await grid.stop();
    removeDir(state);
  }
}

const withPeers = await run(true);
const coordinatorOnly = values.compare !== 'false' ? await run(false) : null;
console.log(JSON.stringify({ bench: 'train-p2p', task: describeTask(shape), withPeers, coordinatorOnly }, null, 2));
process.exit(0);
