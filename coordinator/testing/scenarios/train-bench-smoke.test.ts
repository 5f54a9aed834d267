// Small runs of the training benches — `npm run bench:train` (3 workers, each in its own process, 2
// rounds, one adversary) and `npm run bench:train-p2p` (2 native volunteers): each finishes its runs
// and prints its figures. Speed is not asserted here.
import { expect, test } from 'vitest';
import { runBench } from '../helpers.js';

test('the training bench trains to the central reference and prints its figures', () => {
  const args = ['--import', 'tsx', 'bench/train.ts', '--workers', '3', '--rounds', '2', '--steps', '5', '--units', '4', '--hidden', '16', '--adversaries', '0.34'];
  const report = runBench<{
    honest: { rounds: number; roundsPerMinute: number; fleetUtilisation: number; loss: { ratio: number }; adversaryCredit: number; coordinatorBytesPerRound: number };
    withAdversaries: { adversaries: number; rounds: number; adversaryCredit: number; byKind: Record<string, { unitsSent: number; accepted: number }>; loss: { ratio: number } } | null;
    int8VsFp32: { deltaBytesPerRound: { int8: number; fp32: number } };
  }>(args, 120_000);
  expect(report.honest.rounds).toBe(2);
  expect(report.honest.roundsPerMinute).toBeGreaterThan(0);
  expect(report.honest.fleetUtilisation).toBeGreaterThan(0);
  expect(report.honest.loss.ratio).toBeCloseTo(1, 3); // the grid's run is the central reference's
  expect(report.honest.adversaryCredit).toBe(0);
  expect(report.honest.coordinatorBytesPerRound).toBeGreaterThan(0);
  expect(report.withAdversaries).toMatchObject({ adversaries: 1, rounds: 2, adversaryCredit: 0 });
  // The one adversary is a colluder without its partner: a forger replication outvotes.
  expect(report.withAdversaries!.byKind.collude.accepted).toBe(0);
  expect(report.withAdversaries!.loss.ratio).toBeCloseTo(1, 3);
  expect(report.int8VsFp32.deltaBytesPerRound.int8).toBeLessThan(report.int8VsFp32.deltaBytesPerRound.fp32 / 2);
}, 150_000);

// 2 native volunteer processes with WebRTC, 2 rounds, no --no-p2p comparison: the per-round bytes
// add up, each volunteer's stats file was read, and the loss is the central reference's.
test('the peer-to-peer training bench prints bytes per round from peers and from the coordinator', () => {
  const args = ['--import', 'tsx', 'bench/train-p2p.ts', '--native', '2', '--rounds', '2', '--steps', '5', '--units', '2', '--hidden', '16', '--compare', 'false'];
  const report = runBench<{
    withPeers: {
      rounds: number;
      perRound: { round: number; fromPeers: number; fromCoordinator: number; coordinatorSent: number }[];
      coordinatorBytesPerRound: number;
      peerBytesPerRound: number;
      utilisation: number[];
      unitsPerVolunteer: number[];
      loss: { ratio: number };
    };
    coordinatorOnly: unknown;
  }>(args, 120_000);
  const r = report.withPeers;
  expect(r.rounds).toBe(2);
  expect(r.perRound.map((x) => x.round)).toEqual([0, 1]);
  // What the volunteers say the coordinator sent them is what it counted sending.
  const sum = (f: (x: (typeof r.perRound)[number]) => number) => r.perRound.reduce((s, x) => s + f(x), 0);
  expect(sum((x) => x.coordinatorSent)).toBe(sum((x) => x.fromCoordinator));
  expect(r.coordinatorBytesPerRound).toBe(Math.round(sum((x) => x.fromCoordinator) / 2));
  expect(r.peerBytesPerRound).toBe(Math.round(sum((x) => x.fromPeers) / 2));
  // 2 units × 2 replicas a round, over 2 rounds, each volunteer's count from its stats file.
  expect(r.unitsPerVolunteer.reduce((s, n) => s + n, 0)).toBe(8);
  for (const u of r.utilisation) expect(u).toBeGreaterThan(0);
  expect(r.loss.ratio).toBeCloseTo(1, 3);
  expect(report.coordinatorOnly).toBeNull();
}, 150_000);
