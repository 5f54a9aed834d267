// The researcher dashboard: sign in with the API token, submit every job kind by picking files in
// the browser (a matmul, a causal attention, an ONNX model with its input), watch each finish,
// download the results and check them against references; a broken model or input is refused with
// a clear message; cancel a job nobody computes. The interactive API page answers a call.
// Not about the backend: the volunteer page computes on the CPU (forced with ?backend=cpu; the
// faster one on this machine, where WebGPU is SwiftShader).
import { expect, test } from './fixtures';
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import type { Page } from '@playwright/test';
import { attentionReferenceHeads } from '../coordinator/jobs/attention';
import { matmulReference } from '../coordinator/jobs/matmul';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { randomMatrix, TOKEN } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { mlpModel } from '../coordinator/testing/test-models';
import { blobsTask } from '../coordinator/testing/train-task';
import { markovTask, markovTokens } from '../coordinator/testing/lm-task';
import { transformerParamCount } from '../coordinator/protocol/train-transformer';
import type { JobStatus } from '../coordinator/protocol';
import { expectComputedOn, maxRelativeError, openVolunteer, startGrid, uploadMatrix, wireOf } from './grid';

const npyFile = (name: string, shape: number[], data: Float32Array) => ({ name, mimeType: 'application/octet-stream', buffer: Buffer.from(toNpy(shape, data)) });

/** Submits the form, waits for the job it made to finish in the table, and downloads `button`'s file. */
async function submitAndDownload(page: Page, message: string, button: string) {
  await page.getByRole('button', { name: 'Submit job' }).click();
  const note = page.getByTestId('submit-message');
  await expect(note).toContainText(message);
  const id = /Job (\S+) submitted/.exec((await note.textContent()) ?? '')![1];
  const row = page.locator(`[data-testid="job-row"][data-job="${id}"]`);
  await expect(row).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: button }).click()]);
  return parseNpy(new Uint8Array(readFileSync(await download.path())));
}

const SHOTS = 'test-results/screenshots';

test('submit by upload, follow progress, download a result that matches the CPU reference', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const volunteer = await openVolunteer(browser, grid, { backend: 'cpu' });
    const page = await (await browser.newContext()).newPage();
    await page.goto(grid.base + '/dashboard');
    await page.getByLabel('Token').fill('wrong');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await expect(page.getByLabel('Token')).toBeVisible(); // a wrong token sends you back
    await page.getByLabel('Token').fill(TOKEN);
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await expect(page.getByTestId('stat-volunteers')).toContainText('1');

    const [m, k, n] = [50, 30, 40];
    const A = randomMatrix(m, k, 11);
    const B = randomMatrix(k, n, 12);
    await page.getByLabel('A (.npy)').setInputFiles({ name: 'a.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(toNpy([m, k], A)) });
    await page.getByLabel('B (.npy)').setInputFiles({ name: 'b.npy', mimeType: 'application/octet-stream', buffer: Buffer.from(toNpy([k, n], B)) });
    await page.getByLabel('Replicas that must agree').fill('1');
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(page.getByTestId('submit-message')).toContainText('50×30 · 30×40');

    const row = page.getByTestId('job-row').first();
    await expect(row).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
    await expect(page.getByTestId('agreed')).not.toHaveText('0');
    await page.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: 'Download .npy' }).click()]);
    const C = parseNpy(new Uint8Array(readFileSync(await download.path())));
    expect(C.shape).toEqual([m, n]);
    expect(maxRelativeError(C.data, matmulReference(A, B, m, k, n))).toBeLessThanOrEqual(1e-4);
    await expectComputedOn(volunteer, 'cpu');

    // The other kinds, computed by whichever volunteer comes first: the page, or a Node worker.
    const sim = new SimWorker({ url: grid.base, name: 'dashboard-sim', kinds: ['matmul', 'attention', 'onnx', 'train'] });
    await sim.connect();
    try {
      // Attention: Q, K and V files, causal.
      const [heads, seq, d] = [2, 32, 64];
      const [Q, K, V] = [21, 22, 23].map((seed) => randomMatrix(heads * seq, d, seed));
      await page.getByLabel('Attention').check();
      await page.getByLabel('Q (.npy)').setInputFiles(npyFile('q.npy', [heads, seq, d], Q));
      await page.getByLabel('K (.npy)').setInputFiles(npyFile('k.npy', [heads, seq, d], K));
      await page.getByLabel('V (.npy)').setInputFiles(npyFile('v.npy', [heads, seq, d], V));
      await page.getByRole('checkbox', { name: /Causal/ }).check();
      const out = await submitAndDownload(page, 'attention over 2×32×64 (causal)', 'Download .npy');
      expect(out.shape).toEqual([heads, seq, d]);
      expect(maxRelativeError(out.data, attentionReferenceHeads(Q, K, V, heads, seq, d, true))).toBeLessThanOrEqual(1e-4);

      // ONNX: the model is read as soon as it is picked (a broken one is refused with the
      // coordinator's message), then one file per model input; the result by output name.
      await page.getByLabel('ONNX model').check();
      await page.getByLabel('Model (.onnx)').setInputFiles({ name: 'broken.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from('not a model') });
      await expect(page.getByTestId('model-error')).toContainText('not a valid ONNX model');
      await page.getByLabel('Model (.onnx)').setInputFiles({ name: 'mlp.onnx', mimeType: 'application/octet-stream', buffer: Buffer.from(mlpModel()) });
      await expect(page.getByTestId('model-info')).toContainText('x [?, 16]');
      const X = randomMatrix(40, 16, 24);
      await page.getByLabel('Input x (.npy').setInputFiles(npyFile('x.npy', [40, 16], X));
      await page.getByRole('checkbox', { name: /logits by its argmax/ }).check();
      const logits = await submitAndDownload(page, 'mlp.onnx over 40×16', 'Download logits.npy');
      const session = await ort.InferenceSession.create(mlpModel());
      const expected = (await session.run({ x: new ort.Tensor('float32', X, [40, 16]) })).logits.data as Float32Array;
      expect(logits.shape).toEqual([40, 10]);
      expect(maxRelativeError(logits.data, expected)).toBeLessThanOrEqual(1e-4);

      // Training: X and Y files and the MLP's widths; the loss per round is plotted, the parameters
      // and the trained model download.
      const task = blobsTask(256, 8, 4, 25);
      await page.getByLabel('Training (classifier)').check();
      await page.getByLabel('X (.npy)').setInputFiles(npyFile('x.npy', [256, 8], task.x));
      await page.getByLabel('Y (.npy)').setInputFiles(npyFile('y.npy', [256], task.y));
      await page.getByLabel('Layers').fill('8, 16, 4');
      await page.getByLabel('Rounds').fill('2');
      await page.getByLabel('Local steps').fill('4');
      const params = await submitAndDownload(page, 'training 8→16→4 on 256×8 for 2 rounds', 'Download .npy');
      expect(params.shape).toEqual([8 * 16 + 16 + 16 * 4 + 4]);
      await expect(page.getByTestId('loss-chart')).toBeVisible();
      await expect(page.getByTestId('train-round').first()).toContainText(/round 2\/2 · loss \d/);
      const [onnxFile] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download model.onnx' }).click()]);
      const trained = await ort.InferenceSession.create(readFileSync(await onnxFile.path()));
      expect(trained.outputNames).toEqual(['logits']);

      // The language model: a token file and the transformer's shape.
      const lmModel = { vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 };
      const tokens = markovTokens(markovTask(8), 2048, 3);
      await page.getByLabel('Training (language model)').check();
      await page.getByLabel('Tokens (.npy)').setInputFiles(npyFile('tokens.npy', [tokens.length], tokens));
      await page.getByLabel('Vocabulary').fill('8');
      await page.getByLabel('Context').fill('16');
      await page.getByLabel('Blocks').fill('1');
      await page.getByLabel('Width (dModel)').fill('16');
      await page.getByLabel('Heads').fill('2');
      await page.getByLabel('Rounds').fill('2');
      await page.getByLabel('Local steps').fill('4');
      await page.getByLabel('Batch size (windows)').fill('8');
      const lmParams = await submitAndDownload(page, 'training a 1-block transformer (d 16, 2 heads, context 16) on 2048 tokens for 2 rounds', 'Download .npy');
      expect(lmParams.shape).toEqual([transformerParamCount(lmModel)]);
      await page.screenshot({ path: `${SHOTS}/dashboard-kinds.png`, fullPage: true });
    } finally {
      sim.close();
    }
    await page.getByLabel('Matrix product').check();

    // A job nobody computes (the only volunteer paused: it has told the coordinator) is cancelled
    // from its row, after a confirmation.
    await volunteer.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => wireOf(volunteer).sent.filter((msg) => msg.type === 'ready').at(-1)?.slots).toBe(0);
    const idle = await grid.submitJob({ kind: 'matmul', inputs: { a: await uploadMatrix(grid, m, k, A), b: await uploadMatrix(grid, k, n, B) }, replication: 1 });
    const idleRow = page.locator(`[data-testid="job-row"][data-job="${idle}"]`);
    await expect(idleRow).toHaveAttribute('data-state', 'queued', { timeout: 10_000 });
    page.once('dialog', (d) => void d.accept());
    await idleRow.getByRole('button', { name: 'Cancel' }).click();
    await expect(idleRow).toHaveAttribute('data-state', 'failed');
    await expect(idleRow).toContainText('cancelled');
    expect(((await (await grid.api(`/api/jobs/${idle}`)).json()) as JobStatus).error).toBe('cancelled');

    // A wrong file is refused, naming it and what is wrong; shapes that do not multiply, with the coordinator's message.
    await page.getByLabel('A (.npy)').setInputFiles({ name: 'a.npy', mimeType: 'application/octet-stream', buffer: Buffer.from('not an npy') });
    await page.getByLabel('B (.npy)').setInputFiles(npyFile('b.npy', [k, n], B));
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(page.getByTestId('submit-error')).toContainText('a (a.npy): not a .npy file');
    await page.getByLabel('A (.npy)').setInputFiles(npyFile('a.npy', [m, k + 1], randomMatrix(m, k + 1, 13)));
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(page.getByTestId('submit-error')).toContainText('inner dimensions differ');
    await expect(page.getByTestId('submit-error')).toContainText('(HTTP 400 bad_request)');

    // The API page: generated from the OpenAPI document, and it can make calls.
    await page.goto(grid.base + '/api/docs');
    const op = page.getByTestId('operation').filter({ hasText: '/api/volunteers/{id}/receipts' });
    await op.locator('summary').click();
    await op.getByLabel(/^id/).fill('v_nobody');
    await op.getByRole('button', { name: 'Send' }).click();
    await expect(op.getByTestId('try-result')).toContainText('HTTP 404');
    await page.screenshot({ path: `${SHOTS}/api-docs.png`, fullPage: true });
  } finally {
    await grid.stop();
  }
});
