// The `tabgrid` command line against a real coordinator and real workers: every kind from files to
// a result file that matches a reference, the job commands, --json output, and the documented exit
// status of each failure, from real bad requests. Most runs call main() in this process; a few run
// the real bin (bin/tabgrid.js) as a child process.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeEach, describe, expect, test } from 'vitest';
import { parseNpy, toNpy } from '../../coordinator/protocol/npy.js';
import { useTestGrid } from '../../coordinator/testing/fixtures.js';
import { attentionF64, matmulF64, maxAbsDiff } from '../../coordinator/testing/float64-references.js';
import { closedPort, makeTempDir, randomMatrix, removeDir, TOKEN } from '../../coordinator/testing/helpers.js';
import { SimWorker } from '../../coordinator/testing/sim-worker.js';
import { convNetModel, mlpModel } from '../../coordinator/testing/test-models.js';
import { centralReference } from '../../coordinator/jobs/train.js';
import { TrainJobSubmit } from '../../coordinator/protocol/index.js';
import { transformerLogits } from '../../coordinator/protocol/train-transformer.js';
import { markovTask, markovTokens } from '../../coordinator/testing/lm-task.js';
import { blobsTask, int32Npy } from '../../coordinator/testing/train-task.js';
import { EXIT, main } from './cli.js';
import type { JobStatus } from './index.js';

const ROOT = resolve(import.meta.dirname, '../..');
const { grid: coordinator, workers } = useTestGrid();

let dir = '';
beforeEach(() => {
  dir = makeTempDir('tabgrid-cli-');
  return () => removeDir(dir);
});

async function startWorkers(count = 2) {
  for (let i = 0; i < count; i++) {
    const w = new SimWorker({ url: coordinator.base, name: `cli-${i}`, kinds: ['matmul', 'attention', 'onnx', 'train'] });
    workers.push(w);
    await w.connect();
  }
}

interface Run {
  code: number;
  out: string;
  err: string;
  bytes: Uint8Array;
}

/** main() with captured output; URL and token from the environment unless `env` says otherwise. */
async function tabgrid(args: string[], opts: { env?: Record<string, string | undefined>; tty?: boolean } = {}): Promise<Run> {
  const out: (string | Uint8Array)[] = [];
  let err = '';
  const code = await main(args, {
    stdout: { write: (x: string | Uint8Array) => out.push(x) },
    stderr: { write: (x: string) => (err += x), isTTY: opts.tty ?? false, columns: 100 },
    env: { TABGRID_URL: coordinator.base, TABGRID_TOKEN: TOKEN, TABGRID_RETRIES: '0', ...opts.env },
  });
  const bytes = out.filter((x): x is Uint8Array => typeof x !== 'string');
  return { code, out: out.filter((x) => typeof x === 'string').join(''), err, bytes: bytes[0] ?? new Uint8Array() };
}

const json = <T = Record<string, unknown>>(text: string) => JSON.parse(text) as T;

function save(name: string, shape: number[], data: Float32Array): string {
  const path = join(dir, name);
  writeFileSync(path, toNpy(shape, data));
  return path;
}

const load = (path: string) => parseNpy(new Uint8Array(readFileSync(path)));

async function ortRun(model: Uint8Array, feeds: Record<string, { data: Float32Array; shape: number[] }>) {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(model);
  const out = await session.run(Object.fromEntries(Object.entries(feeds).map(([n, t]) => [n, new ort.Tensor('float32', t.data, t.shape)])));
  return Object.fromEntries(Object.entries(out).map(([n, t]) => [n, t.data as Float32Array]));
}

describe('submit: every kind from files to a result file', () => {
  test('matmul a.npy b.npy -o c.npy --replication 2', async () => {
    await startWorkers();
    const [m, k, n] = [40, 30, 20];
    const a = randomMatrix(m, k, 1);
    const b = randomMatrix(k, n, 2);
    const c = join(dir, 'c.npy');
    const r = await tabgrid(['submit', 'matmul', save('a.npy', [m, k], a), save('b.npy', [k, n], b), '-o', c, '--replication', '2', '--name', 'from the cli']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/^j_\S+\n$/); // the job id alone, for $(…)
    expect(r.err).toContain(`wrote ${c} (40×20)`);
    const result = load(c);
    expect(result.shape).toEqual([m, n]);
    expect(maxAbsDiff(result.data, matmulF64(a, b, m, k, n))).toBeLessThan(1e-4);
    const status = json<JobStatus>((await tabgrid(['status', r.out.trim(), '--json'])).out);
    expect(status).toMatchObject({ state: 'done', replication: 2, name: 'from the cli', result: { shape: [m, n] } });
  });

  test('attention q.npy k.npy v.npy --causal -o out.npy --json', async () => {
    await startWorkers();
    const [heads, seq, d] = [2, 24, 64];
    const [q, k, v] = [3, 4, 5].map((seed) => randomMatrix(heads * seq, d, seed));
    const files = ['q', 'k', 'v'].map((name, i) => save(`${name}.npy`, [heads, seq, d], [q, k, v][i]));
    const out = join(dir, 'out.npy');
    const r = await tabgrid(['submit', 'attention', ...files, '--causal', '-o', out, '--json']);
    expect(r.code).toBe(EXIT.ok);
    expect(r.err).toBe('');
    const answer = json<{ id: string; kind: string; workUnits: number; status: JobStatus; files: { path: string; shape: number[] }[] }>(r.out);
    expect(answer).toMatchObject({ kind: 'attention', status: { state: 'done' }, files: [{ path: out, shape: [heads, seq, d] }] });
    expect(answer.workUnits).toBeGreaterThan(0);
    expect(maxAbsDiff(load(out).data, attentionF64(q, k, v, heads, seq, d, true))).toBeLessThan(1e-4);
  });

  test('onnx model.onnx x=x.npy -o logits.npy; a two-output model writes a folder', async () => {
    await startWorkers();
    writeFileSync(join(dir, 'mlp.onnx'), mlpModel());
    const x = randomMatrix(120, 16, 7);
    const logits = join(dir, 'logits.npy');
    const r = await tabgrid(['submit', 'onnx', join(dir, 'mlp.onnx'), `x=${save('x.npy', [120, 16], x)}`, '--items-per-unit', '50', '--argmax', 'logits', '-o', logits]);
    expect(r.code).toBe(EXIT.ok);
    const expected = await ortRun(mlpModel(), { x: { data: x, shape: [120, 16] } });
    expect(maxAbsDiff(load(logits).data, expected.logits)).toBeLessThan(1e-4);

    writeFileSync(join(dir, 'convnet.onnx'), convNetModel());
    const image = randomMatrix(30, 64, 8);
    const folder = join(dir, 'conv-out');
    const two = await tabgrid(['submit', 'onnx', join(dir, 'convnet.onnx'), save('image.npy', [30, 1, 8, 8], image), '-o', folder, '--json']);
    expect(two.code).toBe(EXIT.ok);
    expect(json<{ outputs: string[]; files: { output: string }[] }>(two.out)).toMatchObject({ outputs: ['logits', 'features'], files: [{ output: 'logits' }, { output: 'features' }] });
    const ref = await ortRun(convNetModel(), { image: { data: image, shape: [30, 1, 8, 8] } });
    expect(maxAbsDiff(load(join(folder, 'logits.npy')).data, ref.logits)).toBeLessThan(1e-4);
    expect(load(join(folder, 'features.npy')).shape).toEqual([30, 4, 4, 4]);
    // one output by name, to stdout
    const one = await tabgrid(['result', json<{ id: string }>(two.out).id, '--output', 'features', '-o', '-']);
    expect(one.code).toBe(EXIT.ok);
    expect(parseNpy(one.bytes).data).toEqual(load(join(folder, 'features.npy')).data);
  });

  test('train x.npy y.npy --layers … -o params.npy; result --model writes the trained ONNX model, which runs as an onnx job', async () => {
    await startWorkers();
    const task = blobsTask(256, 8, 4, 5);
    const [x, y] = [save('x.npy', [task.n, task.f], task.x), save('y.npy', [task.n], task.y)];
    const usage = await tabgrid(['submit', 'train', x, y, '--rounds', '2', '--local-steps', '4', '--batch-size', '32']);
    expect(usage).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('needs --layers') });
    const params = join(dir, 'params.npy');
    const args = ['--layers', '8,16,4', '--rounds', '2', '--local-steps', '4', '--batch-size', '32', '--lr', '0.01', '--units-per-round', '2'];
    const r = await tabgrid(['submit', 'train', x, y, ...args, '-o', params, '--json']);
    expect(r.code).toBe(EXIT.ok);
    const { id, status } = json<{ id: string; status: JobStatus }>(r.out);
    expect(status).toMatchObject({ kind: 'train', state: 'done', rounds: 2, round: 2 });
    expect(load(params).shape).toEqual([8 * 16 + 16 + 16 * 4 + 4]);
    expect((await tabgrid(['status', id])).out).toMatch(/ {2}round 2\/2 loss \d/);
    const model = join(dir, 'model.onnx');
    expect((await tabgrid(['result', id, '--model', '-o', model])).code).toBe(EXIT.ok);
    const run = await tabgrid(['submit', 'onnx', model, save('rows.npy', [10, 8], task.x.subarray(0, 80)), '-o', join(dir, 'logits.npy'), '--replication', '1']);
    expect(run.code).toBe(EXIT.ok);
    expect(load(join(dir, 'logits.npy')).shape).toEqual([10, 4]);
  });
});

describe('submit train --tokens: the transformer language model', () => {
  const chain = markovTask(8);
  const tokens = markovTokens(chain, 4096, 1);
  const validation = markovTokens(chain, 1024, 2);
  const model = ['--vocab', '8', '--context', '16', '--layers', '1', '--d-model', '16', '--heads', '2'];
  const settings = ['--local-steps', '32', '--batch-size', '8', '--lr', '0.015', '--units-per-round', '2'];
  const data = { family: 'transformer' as const, tokens, validation, context: 16 };
  const reference = (rounds: number, init?: Float32Array) =>
    centralReference(
      TrainJobSubmit.parse({ kind: 'train', model: { type: 'transformer', vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 }, data: { tokens: 'a'.repeat(64) }, rounds, localSteps: 32, batchSize: 8, innerOptimizer: { type: 'adamw', lr: 0.015 }, unitsPerRound: 2 }),
      data,
      Float64Array,
      init,
    ).losses;

  test('prints each round\'s loss while it waits, -o writes the parameters; --init starts from them; result --model runs', async () => {
    await startWorkers();
    const files = ['--tokens', join(dir, 't.npy'), '--validation', save('v.npy', [validation.length], validation)];
    writeFileSync(join(dir, 't.npy'), int32Npy(tokens));
    const params = join(dir, 'params.npy');
    const r = await tabgrid(['submit', 'train', ...files, ...model, ...settings, '--rounds', '3', '-o', params]);
    expect(r.code, r.err).toBe(EXIT.ok);
    const lines = [...r.err.matchAll(/^round (\d)\/3 {2}loss (\S+) {2}train loss \S+ {2}2\/2 units$/gm)];
    expect(lines.map((m) => m[1])).toEqual(['1', '2', '3']);
    const losses = lines.map((m) => Number(m[2]));
    const ref = reference(3);
    for (let i = 0; i < 3; i++) {
      expect(losses[i]).toBeLessThan(i === 0 ? ref[0] : losses[i - 1]);
      expect(Math.abs(losses[i] - ref[i + 1])).toBeLessThan(1e-3 * ref[i + 1]);
    }
    const trained = load(params);
    expect(trained.shape).toEqual([3816]);

    const again = await tabgrid(['submit', 'train', ...files, ...model, ...settings, '--rounds', '1', '--init', params, '--wait', '--json']);
    expect(again.code, again.err).toBe(EXIT.ok);
    const { id, status } = json<{ id: string; status: JobStatus }>(again.out);
    const fromInit = reference(1, trained.data)[1];
    expect(Math.abs(status.perRound![0].loss - fromInit)).toBeLessThan(1e-3 * fromInit);
    expect(reference(1)[1] - fromInit).toBeGreaterThan(0.1); // not where the seed would start
    // `wait` on a terminal: the closed rounds above the progress bar.
    const waited = await tabgrid(['wait', id], { tty: true });
    expect(waited.err).toMatch(new RegExp(`^round 1/1  loss ${status.perRound![0].loss.toPrecision(5)}  train loss \\S+  2/2 units\n\\r${id} \\[█+\\] 2/2 units  done`));

    const onnx = join(dir, 'lm.onnx');
    expect((await tabgrid(['result', id, '--model', '-o', onnx])).code).toBe(EXIT.ok);
    expect((await tabgrid(['result', id, '-o', join(dir, 'p2.npy')])).code).toBe(EXIT.ok);
    const { logits } = await ortRun(readFileSync(onnx), { tokens: { data: tokens.subarray(0, 16), shape: [1, 16] } });
    const expected = transformerLogits({ vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 }, load(join(dir, 'p2.npy')).data, tokens.subarray(0, 17), Int32Array.of(0));
    expect(maxAbsDiff(logits, expected)).toBeLessThan(1e-4);
  });

  test('bad command lines are usage errors (2), bad token files bad input (2), what the coordinator refuses 3', async () => {
    const t = save('t.npy', [tokens.length], tokens);
    const x = save('x.npy', [4, 2], new Float32Array(8));
    const run = (...args: string[]) => tabgrid(['submit', 'train', ...args, '--rounds', '1', ...settings]);
    expect(await run('--tokens', t, x, x, ...model)).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('submit train --tokens takes no other files') });
    expect(await run('--tokens', t, ...model.slice(0, 8))).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('submit train --tokens needs --heads') });
    expect(await run('--tokens', t, ...model, '--layers', '2,3')).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('--layers must be a whole number, got 2,3') });
    expect(await run(x, x, '--layers', '2,3', '--vocab', '8')).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('--vocab is for a language model') });
    const outOfRange = await run('--tokens', save('big.npy', [3], new Float32Array([1, 8, 2])), ...model, '--json');
    expect(outOfRange.code).toBe(EXIT.usage);
    expect(json(outOfRange.err)).toMatchObject({ error: { code: 'bad_input', message: 'tokens: token ids must be whole numbers in [0, 8) (model.vocab); position 1 has 8' } });
    const heads = await run('--tokens', t, ...model.slice(0, 8), '--heads', '3');
    expect(heads).toMatchObject({ code: EXIT.refused, err: expect.stringContaining('dModel must be divisible by heads') });
    const init = await run('--tokens', t, ...model, '--init', save('p.npy', [10], new Float32Array(10)));
    expect(init).toMatchObject({ code: EXIT.refused, err: expect.stringContaining('init: has 10 values but the model has 3816 parameters') });
  });
});

describe('the job commands', () => {
  test('submit prints the id; status, wait (a progress bar on a terminal), result, jobs', async () => {
    const a = save('a.npy', [16, 16], randomMatrix(16, 16, 1));
    const submitted = await tabgrid(['submit', 'matmul', a, a, '--replication', '1', '--tile', '8x8', '--json']);
    expect(submitted.code).toBe(EXIT.ok);
    const { id, workUnits } = json<{ id: string; workUnits: number }>(submitted.out);
    expect(workUnits).toBe(4);
    const queued = await tabgrid(['status', id]);
    expect(queued.out).toBe(`${id}  matmul  queued  0/4 units\n`);
    expect((await tabgrid(['result', id, '-o', join(dir, 'early.npy')])).code).toBe(EXIT.notReady);

    await startWorkers(1);
    const waited = await tabgrid(['wait', id], { tty: true });
    expect(waited.code).toBe(EXIT.ok);
    expect(waited.err).toMatch(new RegExp(`\\r${id} \\[[█░]+\\] 4/4 units  done`));
    expect(waited.out).toMatch(new RegExp(`^${id}  matmul  done  4/4 units  result 16×16`));
    const quiet = await tabgrid(['wait', id, '--json'], { tty: true });
    expect(quiet.err).toBe(''); // no bar with --json
    expect(json<JobStatus>(quiet.out).state).toBe('done');

    const again = await tabgrid(['submit', 'matmul', a, a, '--replication', '1', '--wait']);
    expect(again.code).toBe(EXIT.ok);
    expect(again.out).toMatch(/^j_\S+\n$/);
    expect(again.err).toContain('matmul  done  1/1 units');

    const r = await tabgrid(['result', id, '-o', join(dir, 'c.npy'), '--json']);
    expect(json(r.out)).toEqual({ id, files: [{ path: join(dir, 'c.npy'), shape: [16, 16] }] });
    const jobs = await tabgrid(['jobs', '--json']);
    expect(json<{ jobs: JobStatus[] }>(jobs.out).jobs.map((j) => j.id)).toEqual([again.out.trim(), id]);
    expect((await tabgrid(['jobs'])).out).toContain(`${id}  matmul  done`);
    const grid = await tabgrid(['status']);
    expect(grid.out).toContain('volunteers  1 online of 1');
    expect(json<{ jobs: { done: number } }>((await tabgrid(['status', '--json'])).out).jobs.done).toBe(2);
  });
});

describe('exit status', () => {
  test('2: usage — unknown command or option, missing argument, unreadable or invalid file', async () => {
    const a = save('a.npy', [2, 2], new Float32Array(4));
    expect((await tabgrid(['frobnicate'])).code).toBe(EXIT.usage);
    expect((await tabgrid([])).code).toBe(EXIT.usage);
    expect((await tabgrid(['--help'])).code).toBe(EXIT.ok);
    const stray = await tabgrid(['submit', 'matmul', a, a, '--causal']);
    expect(stray).toMatchObject({ code: EXIT.usage, err: expect.stringContaining('--causal is not an option of `tabgrid submit matmul`') });
    expect((await tabgrid(['submit', 'matmul', a])).code).toBe(EXIT.usage);
    expect((await tabgrid(['submit', 'matmul', a, join(dir, 'missing.npy')])).err).toContain('missing.npy: no such file');
    writeFileSync(join(dir, 'bad.npy'), 'not a .npy');
    const bad = await tabgrid(['submit', 'matmul', a, join(dir, 'bad.npy'), '--json']);
    expect(bad.code).toBe(EXIT.usage);
    expect(json(bad.err)).toEqual({ error: { code: 'bad_input', message: 'b: not a .npy file (missing \\x93NUMPY magic)', exit: 2 } });
    expect((await tabgrid(['submit', 'matmul', a, a, '--tile', 'big'])).code).toBe(EXIT.usage);
    expect((await tabgrid(['result', 'j_x'])).code).toBe(EXIT.usage); // no -o
  });

  test('3: refused — shapes that do not multiply (400), an unknown job (404), cancelling twice (409)', async () => {
    const bad = await tabgrid(['submit', 'matmul', save('a.npy', [3, 4], new Float32Array(12)), save('b.npy', [5, 2], new Float32Array(10)), '--json']);
    expect(bad.code).toBe(EXIT.refused);
    expect(json(bad.err)).toMatchObject({ error: { code: 'bad_request', status: 400, exit: 3, message: expect.stringContaining('inner dimensions differ') } });
    const missing = await tabgrid(['status', 'j_nope']);
    expect(missing).toMatchObject({ code: EXIT.refused, err: 'tabgrid: no job j_nope\n' });
    const a = save('sq.npy', [4, 4], randomMatrix(4, 4, 1));
    const id = (await tabgrid(['submit', 'matmul', a, a])).out.trim();
    const cancelled = await tabgrid(['cancel', id, '--json']);
    expect(cancelled.code).toBe(EXIT.ok);
    expect(json<JobStatus>(cancelled.out)).toMatchObject({ state: 'failed', error: 'cancelled' });
    expect((await tabgrid(['cancel', id])).code).toBe(EXIT.refused);
    // 1: the job failed or was cancelled
    const waited = await tabgrid(['wait', id, '--json']);
    expect(waited.code).toBe(EXIT.jobFailed);
    expect(json<{ status: JobStatus }>(waited.out).status.error).toBe('cancelled');
    expect(json(waited.err)).toMatchObject({ error: { code: 'job_failed', exit: 1 } });
    expect((await tabgrid(['result', id, '-o', join(dir, 'x.npy')])).code).toBe(EXIT.jobFailed);
  });

  test('4: no token or a wrong one; 6: timed out; 7: nothing listening', async () => {
    const a = save('a.npy', [2, 2], new Float32Array(4));
    expect((await tabgrid(['jobs'], { env: { TABGRID_TOKEN: undefined } })).code).toBe(EXIT.auth);
    const wrong = await tabgrid(['jobs', '--token', 'wrong', '--json']);
    expect(wrong.code).toBe(EXIT.auth);
    expect(json(wrong.err)).toMatchObject({ error: { code: 'unauthorized', status: 401 } });
    const id = (await tabgrid(['submit', 'matmul', a, a])).out.trim();
    expect(await tabgrid(['wait', id, '--timeout', '0.2'])).toMatchObject({ code: EXIT.timeout, err: expect.stringContaining('still queued') });
    const port = await closedPort();
    const down = await tabgrid(['jobs', '--url', `http://127.0.0.1:${port}`]);
    expect(down).toMatchObject({ code: EXIT.unavailable, err: expect.stringContaining('ECONNREFUSED') });
  });
});

/** A child process to its end (asynchronously: the coordinator it talks to runs in this process). */
function run(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('the bin', () => {
  const bin = (args: string[], env: Record<string, string> = {}) =>
    run([join(ROOT, 'bin/tabgrid.js'), ...args], { env: { TABGRID_URL: coordinator.base, TABGRID_TOKEN: TOKEN, ...env } });

  test('its exit status and --json reach the shell; start, ledger and tokens are the coordinator\'s', async () => {
    const a = save('a.npy', [4, 4], randomMatrix(4, 4, 1));
    const submitted = await bin(['submit', 'matmul', a, a, '--json']);
    expect(submitted.status).toBe(0);
    const { id } = json<{ id: string }>(submitted.stdout);
    const timedOut = await bin(['wait', id, '--timeout', '0.1', '--json']);
    expect(timedOut.status).toBe(EXIT.timeout);
    expect(json(timedOut.stderr)).toMatchObject({ error: { code: 'timeout', exit: 6 } });
    expect((await bin(['status', 'j_nope'])).status).toBe(EXIT.refused);
    // The coordinator's own commands, on its data directory.
    const tokens = await bin(['tokens', 'list', '--data', coordinator.dir]);
    expect(tokens.status).toBe(0);
    const made = await bin(['tokens', 'create', '--scope', 'submit', '--name', 'cli test', '--data', coordinator.dir]);
    expect(made.stdout).toContain('created submit token');
    const secret = made.stdout.trim().split('\n').at(-1)!;
    expect((await bin(['jobs', '--json'], { TABGRID_TOKEN: secret })).status).toBe(0);
  });

  test('the client is importable as tabgrid/client (package.json exports)', async () => {
    const r = await run(['--import', 'tsx', '--input-type=module', '-e', "const m = await import('tabgrid/client'); console.log(typeof m.Grid, typeof m.ApiError)"], { cwd: ROOT });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('function function');
  });
});
