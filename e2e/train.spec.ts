// A training job end to end: three browser volunteers — two on the WebGPU backend (the WGSL
// training loop, web/gpu/train-mlp.ts) and one on the CPU backend (the ONNX step graph on the wasm
// EP, web/cpu/train.ts) —
// train the MLP for 5 rounds with every unit replicated on all three, so each unit's GPU replicas
// are compared with its CPU one within the unit's tolerance; the coordinator aggregates and steps;
// the final parameters match the central float64 reference, the loss falls every round, each page
// shows "training: round r of R, loss", and the WebGPU pages' workers really trained on the GPU and
// the CPU page's on the step graph;
// then again with int8 Δs. And one round of the transformer LM, whose units carry tokens and no
// labels (the ONNX step graph on the webgpu EP on the WebGPU page, every node on the GPU, and on the
// wasm EP on the CPU one: replicas of each other), matching its central reference.
import { expect, test } from './fixtures';
import { centralReference } from '../coordinator/jobs/train';
import { parseNpy, toNpy } from '../coordinator/protocol/npy';
import { TrainJobSubmit, type JobStatus } from '../coordinator/protocol';
import { markovTask, markovTokens } from '../coordinator/testing/lm-task';
import { blobsTask, relativeL2 } from '../coordinator/testing/train-task';
import { computedOn, cpuGraphTrainUnits, gpuTrainUnits, openVolunteer, startGrid, webgpuGraphTrain } from './grid';

test('two WebGPU-backend volunteers and a CPU-backend one train the MLP for 5 rounds to the central reference', async ({ browser }) => {
  const task = blobsTask(512, 8, 4, 11);
  const grid = await startGrid();
  try {
    const backends = ['webgpu', 'cpu', 'webgpu'] as const;
    const pages = [];
    for (const backend of backends) pages.push(await openVolunteer(browser, grid, { backend }));
    const body = {
      kind: 'train',
      model: { type: 'mlp', layers: [8, 16, 4], activation: 'relu' },
      data: { x: await grid.uploadShard(toNpy([task.n, task.f], task.x)), y: await grid.uploadShard(toNpy([task.n], task.y)) },
      rounds: 5,
      localSteps: 8,
      batchSize: 32,
      innerOptimizer: { type: 'adamw', lr: 0.01 },
      unitsPerRound: 4,
      replication: 3,
    };
    const started = Date.now();
    const jobId = await grid.submitJob(body);
    const status = (await grid.waitForJob(jobId, 150_000)) as JobStatus & { perRound: { loss: number; units: number }[]; round: number };
    const seconds = (Date.now() - started) / 1000;
    expect(status.state).toBe('done');
    expect(status.round).toBe(5);
    expect(status.perRound.map((r) => r.units)).toEqual([4, 4, 4, 4, 4]);
    const ref = centralReference(TrainJobSubmit.parse(body), task);
    const losses = status.perRound.map((r) => r.loss);
    for (let r = 0; r < 5; r++) expect(losses[r]).toBeLessThan(r === 0 ? ref.losses[0] : losses[r - 1]);
    const params = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/outputs/params`)).arrayBuffer())).data;
    const distance = relativeL2(params, ref.params);
    expect(distance).toBeLessThan(1e-4);
    console.log(`e2e train: 5 rounds in ${seconds.toFixed(1)} s on 3 browsers (WebGPU, CPU, WebGPU); loss ${ref.losses[0].toFixed(4)} -> ${losses[4].toFixed(4)} (central ${ref.losses[5].toFixed(4)}); relative L2 ${distance.toExponential(2)}`);
    for (const [i, page] of pages.entries()) {
      await expect(page.getByTestId('training')).toContainText(/training: round 5 of 5, loss \d+\.\d{4}/);
      await expect(page.getByTestId('units-done')).toHaveText('20');
      // Every unit on the WebGPU pages ran the WGSL loop; the CPU page never touched it.
      expect(await gpuTrainUnits(page), `GPU-trained units on the ${backends[i]} page`).toBe(backends[i] === 'webgpu' ? 20 : 0);
      expect(await cpuGraphTrainUnits(page), `step-graph units on the ${backends[i]} page`).toBe(backends[i] === 'cpu' ? 20 : 0);
    }

    // The same with int8 Δs: the pages quantise, the coordinator decodes, the loss still falls.
    const int8Id = await grid.submitJob({ ...body, rounds: 2, compress: 'int8' });
    const int8 = (await grid.waitForJob(int8Id, 150_000)) as typeof status;
    expect(int8.state).toBe('done');
    expect(int8.perRound[1].loss).toBeLessThan(int8.perRound[0].loss);
    expect(Math.abs(int8.perRound[1].loss - ref.losses[2])).toBeLessThan(0.02 * ref.losses[2]);
  } finally {
    await grid.stop();
  }
});

test('a WebGPU-backend and a CPU-backend volunteer train a round of the transformer LM to the central reference', async ({ browser }) => {
  const tokens = markovTokens(markovTask(8), 1024, 1);
  const grid = await startGrid();
  try {
    const pages = [await openVolunteer(browser, grid, { query: '?backend=webgpu' }), await openVolunteer(browser, grid, { query: '?backend=cpu' })];
    const body = {
      kind: 'train',
      model: { type: 'transformer', vocab: 8, context: 16, layers: 1, dModel: 16, heads: 2 },
      data: { tokens: await grid.uploadShard(toNpy([tokens.length], tokens)) },
      rounds: 1,
      localSteps: 8,
      batchSize: 8,
      innerOptimizer: { type: 'adamw', lr: 0.015 },
      unitsPerRound: 2,
      replication: 2,
    };
    const started = Date.now();
    const jobId = await grid.submitJob(body);
    const status = (await grid.waitForJob(jobId, 120_000)) as JobStatus & { perRound: { loss: number; units: number }[] };
    expect(status.state).toBe('done');
    expect(status.perRound.map((r) => r.units)).toEqual([2]);
    const ref = centralReference(TrainJobSubmit.parse(body), { family: 'transformer', tokens, validation: null, context: 16 });
    expect(status.perRound[0].loss).toBeLessThan(ref.losses[0]);
    const params = parseNpy(new Uint8Array(await (await grid.api(`/api/jobs/${jobId}/outputs/params`)).arrayBuffer())).data;
    const distance = relativeL2(params, ref.params);
    expect(distance).toBeLessThan(1e-4);
    console.log(`e2e transformer: 1 round in ${((Date.now() - started) / 1000).toFixed(1)} s on 2 browsers; loss ${ref.losses[0].toFixed(4)} -> ${status.perRound[0].loss.toFixed(4)} (central ${ref.losses[1].toFixed(4)}); relative L2 ${distance.toExponential(2)}`);
    // Each unit's two replicas — the webgpu EP's and the wasm EP's — agreed within the unit's
    // tolerance: the round closed with both pages' 2 units and no third replica.
    for (const page of pages) await expect(page.getByTestId('units-done')).toHaveText('2');
    const onGpu = await webgpuGraphTrain(pages[0]);
    expect(onGpu.fallbackReason, 'why the WebGPU page left the step graph to the CPU').toBeNull();
    expect(onGpu.units, 'units the webgpu EP trained on the WebGPU page').toBe(2);
    expect(onGpu.cpuNodes, "step-graph nodes ORT ran on its CPU EP on the WebGPU page").toEqual([]);
    expect(await computedOn(pages[0]), 'units by the backend that ran them on the WebGPU page').toEqual({ webgpu: 2, cpu: 0 });
    expect(await cpuGraphTrainUnits(pages[0]), 'wasm step-graph units on the WebGPU page').toBe(0);
    expect((await webgpuGraphTrain(pages[1])).units, 'webgpu EP units on the CPU page').toBe(0);
    expect(await cpuGraphTrainUnits(pages[1]), 'step-graph units on the CPU page').toBe(2);
  } finally {
    await grid.stop();
  }
});
