// Issue 18: "The round's parameters are a shard like any other: volunteers get them from peers over
// WebRTC, so the coordinator does not serve every volunteer every round." Three native volunteers
// (the page's own CoordinatorClient in Node, WebRTC by node-datachannel, the TS training loop on the
// CPU backend) train a small MLP for 3 rounds against a real coordinator on 127.0.0.1: peers serve
// shard bytes every round (the job's shardTraffic by round, as the volunteers report them; the
// coordinator's own count of what it sent agrees), and the result is the central reference's.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { centralReference } from '../../jobs/train.js';
import { parseNpy, toNpy } from '../../protocol/npy.js';
import { TrainJobSubmit, type JobStatus } from '../../protocol/index.js';
import { NativeCompute } from '../../tools/native-volunteer/compute.js';
import { installWebRtc, installWebSocket } from '../../tools/native-volunteer/node-globals.js';
import type { NativeVolunteer } from '../../tools/native-volunteer/volunteer.js';
import { makeTempDir, removeDir, startTestCoordinator, waitFor, type TestCoordinator } from '../helpers.js';
import { blobsTask, relativeL2 } from '../train-task.js';

const task = blobsTask(768, 8, 4, 21);
const LAYERS = [8, 32, 4];

let grid: TestCoordinator;
let compute: NativeCompute;
const state = makeTempDir('tabgrid-train-p2p-');
const volunteers: NativeVolunteer[] = [];

beforeAll(async () => {
  installWebSocket();
  const problem = await installWebRtc();
  if (problem) throw new Error(`no WebRTC for the native volunteers: ${problem}`);
  compute = await NativeCompute.start({ backend: 'cpu', tune: false });
  grid = await startTestCoordinator({ leaseMs: 60_000 });
}, 60_000);

afterAll(async () => {
  await Promise.all(volunteers.map((v) => v.stop()));
  compute?.close();
  await grid?.stop();
  removeDir(state);
});

test('three native volunteers train 3 rounds: peers serve shard bytes, and the result is the central reference', async () => {
  const { startNativeVolunteer } = await import('../../tools/native-volunteer/volunteer.js');
  for (let i = 0; i < 3; i++) volunteers.push(startNativeVolunteer({ url: grid.base, identityFile: `${state}/v${i}.key`, compute }));
  await waitFor(() => volunteers.every((v) => v.state().p2p === 'on'), 15_000, 'the volunteers to join the swarm');
  const body = {
    kind: 'train',
    model: { type: 'mlp', layers: LAYERS },
    data: { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) },
    rounds: 3,
    localSteps: 8,
    batchSize: 32,
    innerOptimizer: { type: 'adamw', lr: 0.01 },
    unitsPerRound: 3,
    replication: 2,
  };
  const servedBefore = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes;
  const status = (await grid.waitForJob(await grid.submitJob(body), 30_000)) as JobStatus;
  expect(status.state).toBe('done');
  const served = ((await (await grid.api('/api/p2p')).json()) as { coordinatorShardBytes: number }).coordinatorShardBytes - servedBefore;

  const traffic = status.shardTraffic!;
  console.log(`train over p2p (${volunteers.reduce((s, v) => s + v.state().traffic.peerFailures, 0)} peer failures): ${traffic.fromPeers} shard bytes from peers, ${traffic.fromCoordinator} from the coordinator (which counted ${served} sent); by round ${JSON.stringify(traffic.byRound)}`);
  expect(traffic.fromPeers).toBeGreaterThan(0);
  expect(volunteers.reduce((s, v) => s + v.state().traffic.servedToPeers, 0)).toBeGreaterThan(0);
  // The coordinator's own count of what it sent is what the volunteers say they got from it.
  expect(served).toBe(traffic.fromCoordinator);
  // Every round, the bytes are the round's units' (by round), and after the first (the data slices
  // are cached by then) each round's parameters reach some volunteers from peers: the coordinator
  // does not serve every volunteer every round.
  expect(traffic.byRound!.map((r) => r.round)).toEqual([0, 1, 2]);
  expect(traffic.byRound!.reduce((s, r) => s + r.fromPeers, 0)).toBe(traffic.fromPeers);
  for (const r of traffic.byRound!.slice(1)) expect(r.fromPeers, `round ${r.round}`).toBeGreaterThan(0);

  const ref = centralReference(TrainJobSubmit.parse(body), task);
  const params = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${status.id}/outputs/params`)).arrayBuffer())).data;
  expect(relativeL2(params, ref.params)).toBeLessThan(1e-4);
}, 60_000);
