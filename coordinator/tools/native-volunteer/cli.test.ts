// Issue 22: `npm run volunteers -- --native` as a process — it prints what it computes and how fast,
// and SIGINT in the middle of a unit exits 0 with the unit handed back (another worker then gets it).
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, test } from 'vitest';
import { toNpy } from '../../protocol/npy';
import { SimWorker } from '../../testing/sim-worker';
import { makeTempDir, randomMatrix, removeDir, startTestCoordinator, waitFor } from '../../testing/helpers';
import { swiftShaderAvailable } from './webgpu';

const ROOT = resolve(import.meta.dirname, '../../..');

describe.skipIf(!swiftShaderAvailable())('native volunteer CLI', () => {
  test('prints each unit and its speed; SIGINT mid-unit exits 0 and hands the unit back', async () => {
    const grid = await startTestCoordinator({ leaseMs: 120_000 });
    const state = makeTempDir('tabgrid-native-cli-');
    const args = ['--import', 'tsx', resolve(ROOT, 'coordinator/tools/headless-volunteers.ts'), '--native', '--coordinator', grid.base, '--state', state];
    const proc = spawn(process.execPath, [...args, '--swiftshader', '--backend', 'webgpu', '--no-tune', '--no-p2p', '--interval', '0'], {
      cwd: ROOT,
      env: { ...process.env, VK_ICD_FILENAMES: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += String(d)));
    proc.stderr.on('data', (d) => (out += String(d)));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    let worker: SimWorker | null = null;
    try {
      const job = async (side: number, seed: number) =>
        grid.submitJob({
          kind: 'matmul',
          inputs: { a: await grid.uploadShard(toNpy([side, side], randomMatrix(side, side, seed))), b: await grid.uploadShard(toNpy([side, side], randomMatrix(side, side, seed + 1))) },
          tile: { rows: side, cols: side },
          replication: 1,
          adaptive: false,
        });
      const small = await job(64, 1);
      // A failure says what the volunteer printed.
      const status = await grid.waitForJob(small, 30_000).catch((err: Error) => ({ state: `${err.message}\n${out}` }));
      expect(status.state, out).toBe('done');
      await waitFor(() => /result accepted/.test(out), 5_000, 'the accepted line');
      expect(out).toMatch(/new identity in .*volunteer-0\.key/);
      expect(out).toMatch(/computing j_\w+\.0 of j_\w+: matmul 64×64 · 64×64, 524 kFLOP/);
      expect(out).toMatch(/computed j_\w+\.0 in [\d.]+ s: [\d.]+ [kMG]FLOP\/s/);

      // ~2 GFLOP with the default tiling: seconds on SwiftShader, so SIGINT lands mid-unit.
      const big = await job(1024, 3);
      await waitFor(() => out.includes(`computing ${big}.0`), 20_000, 'the big unit to start');
      proc.kill('SIGINT');
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 10_000))]);
      expect(code, out).toBe(0);
      expect(out).toContain(`stopped: ${big}.0 handed back to the coordinator`);
      // Its figures on the way out: the small unit computed (the big one was not finished), both
      // units' inputs from the coordinator (2 × 64² and 2 × 1024² float32s, each with a 128-byte
      // .npy header: 8,421,888 bytes), nothing from or to peers.
      expect(out).toMatch(/#0 1 unit \(1 accepted\), computing [\d.]+ s \([\d.]+% of [\d.]+ s\), CPU [\d.]+ s; shards 0\.0 KiB from peers, 8224\.5 KiB from the coordinator, 0\.0 KiB served to peers/);
      // The unit went back to the queue: another worker is given it and finishes the job.
      worker = new SimWorker({ url: grid.base });
      await worker.connect();
      expect((await grid.waitForJob(big, 60_000)).state).toBe('done');
      expect(worker.credit).toBe(2 * 1024 ** 3);
    } finally {
      proc.kill('SIGKILL');
      worker?.close();
      await grid.stop();
      removeDir(state);
    }
  }, 120_000);
});
