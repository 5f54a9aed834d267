// The embeddable widget on a page from another origin (another port): the visitor presses the
// widget's own Start button and the browser computes work units for the coordinator. The iframe
// embed renders from the coordinator too.
import { expect, test, traceNote } from './fixtures';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as ort from 'onnxruntime-node';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { mlpModel } from '../coordinator/testing/test-models';
import { randomMatrix, waitFor } from '../coordinator/testing/helpers';
import { SimWorker } from '../coordinator/testing/sim-worker';
import { recordWire, startGrid, uploadMatrix } from './grid';

const SHOTS = 'test-results/screenshots';

function hostPage(coordinator: string): string {
  // Exactly the snippets the README gives.
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A research project's page</title></head>
<body style="font-family: sans-serif; background: #f8fafc; padding: 2rem">
  <h1>Our protein project</h1>
  <p>Help us by lending your GPU:</p>
  <script src="${coordinator}/widget.js"></script>
  <tabgrid-widget coordinator="${coordinator}" project="Protein folding"></tabgrid-widget>
  <h2>Or, without scripts</h2>
  <iframe src="${coordinator}/embed?project=Protein%20folding" title="tabgrid volunteer computing" width="380" height="220" style="border:0"></iframe>
</body></html>`;
}

test('a page on another origin embeds <tabgrid-widget>; a visitor starts it and it computes work units', async ({ browser }) => {
  let coordinator = '';
  const host: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(hostPage(coordinator)));
  await new Promise<void>((r) => host.listen(0, '127.0.0.1', r));
  const hostUrl = `http://127.0.0.1:${(host.address() as AddressInfo).port}/`;
  // The project's site is on the coordinator's allow-list (TABGRID_ALLOWED_ORIGINS).
  const grid = await startGrid({ allowedOrigins: [new URL(hostUrl).origin] });
  coordinator = grid.base;
  try {
    expect(new URL(hostUrl).origin).not.toBe(new URL(grid.base).origin);

    const page = await (await browser.newContext()).newPage();
    page.on('pageerror', (err) => console.error('page error:', err.message));
    const wire = recordWire(page);
    await page.goto(hostUrl);
    const widget = page.locator('tabgrid-widget');
    await expect(widget.getByText('Help Protein folding with your GPU')).toBeVisible();
    // The iframe embed shows its own consent button.
    await expect(page.frameLocator('iframe').getByRole('button', { name: 'Start computing' })).toBeVisible();
    // Nothing runs before consent: no worker has connected.
    expect(((await (await grid.api('/api/volunteers')).json()) as { volunteers: unknown[] }).volunteers).toHaveLength(0);

    traceNote('test', 'pressing the widget\'s Start');
    await widget.getByRole('button', { name: 'Start computing' }).click();
    await expect(widget.getByTestId('widget-phase')).toHaveText(/waiting for work/, { timeout: 60_000 });

    traceNote('test', 'the widget waits for work; submitting a matmul job');
    const [m, k, n] = [40, 24, 40];
    const a = await uploadMatrix(grid, m, k, randomMatrix(m, k, 7));
    const b = await uploadMatrix(grid, k, n, randomMatrix(k, n, 8));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 20, cols: 40 } });
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(widget.getByTestId('widget-units')).toHaveText('2');
    await expect(widget.getByTestId('widget-credit')).toContainText('kFLOP');
    await page.screenshot({ path: `${SHOTS}/widget-cross-origin.png`, fullPage: true });

    // The widget pauses while its tab is hidden: it announces zero slots, and a job's units go to
    // a worker that connects meanwhile, none to the widget; shown again, it computes them.
    traceNote('test', 'hiding the host page');
    const readies = () => wire.sent.filter((m) => m.type === 'ready').map((m) => m.slots);
    const assigned = () => wire.received.filter((m) => m.type === 'assign').length;
    const setVisibility = (state: 'hidden' | 'visible') =>
      page.evaluate((state) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    await setVisibility('hidden');
    await expect(widget.getByTestId('widget-phase')).toHaveText('paused');
    await expect.poll(() => readies().at(-1)).toBe(0);
    const assignedBefore = assigned();
    const hiddenJob = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, replication: 1, tile: { rows: 20, cols: 40 } });
    const holder = new SimWorker({ url: grid.base, name: 'holder', slots: 2, compute: () => new Promise<never>(() => {}) });
    try {
      await holder.connect();
      await waitFor(() => holder.received('assign').length === 2, 20_000, 'the holder to take both units');
      expect(assigned()).toBe(assignedBefore);
      await setVisibility('visible');
      await expect.poll(() => readies().at(-1)).toBe(1);
    } finally {
      holder.kill(); // its units go back to the queue, and to the widget
    }
    expect((await grid.waitForJob(hiddenJob, 60_000)).state).toBe('done');
    await expect(widget.getByTestId('widget-units')).toHaveText('4');

    // An ONNX job too: the widget's worker loads onnxruntime-web and its .wasm from the coordinator.
    traceNote('test', 'matmul job done; submitting an ONNX job');
    const model = mlpModel();
    const up = await grid.api('/api/models', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: model as Uint8Array<ArrayBuffer> });
    expect(up.status).toBe(201);
    const xs = randomMatrix(8, 16, 5);
    const x = await grid.uploadShard(toNpy([8, 16], xs));
    const onnxJob = await grid.submitJob({ kind: 'onnx', model: ((await up.json()) as { sha256: string }).sha256, inputs: { x }, replication: 1 });
    expect((await grid.waitForJob(onnxJob, 90_000)).state).toBe('done');
    const logits = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${onnxJob}/result`)).arrayBuffer())).data;
    const session = await ort.InferenceSession.create(model);
    const expected = (await session.run({ x: new ort.Tensor('float32', xs, [8, 16]) })).logits.data as Float32Array;
    expect(logits.length).toBe(expected.length);
    expected.forEach((v, i) => expect(Math.abs(logits[i] - v)).toBeLessThanOrEqual(1e-4 + 1e-3 * Math.abs(v)));

    // The iframe form starts too: a second volunteer, with the coordinator's own storage.
    traceNote('test', 'ONNX job done; starting the iframe embed');
    const frame = page.frameLocator('iframe');
    const known = ((await (await grid.api('/api/volunteers')).json()) as { volunteers: unknown[] }).volunteers.length; // the widget and the holder
    await frame.getByRole('button', { name: 'Start computing' }).click();
    await expect(frame.getByTestId('widget-phase')).toHaveText(/waiting for work/, { timeout: 60_000 });
    await expect.poll(async () => ((await (await grid.api('/api/volunteers')).json()) as { volunteers: unknown[] }).volunteers.length).toBe(known + 1);
  } finally {
    host.close();
    await grid.stop();
  }
});
