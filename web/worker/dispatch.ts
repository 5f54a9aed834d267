// Runs one work unit in the compute worker, whose runner table picks the kernel by job kind and
// backend (worker/compute.worker.ts). Here only what must happen on the page first: an ONNX unit's
// model is handed to the worker once. Inputs are transferred, not copied.
import * as Comlink from 'comlink';
import { ONNX_MODEL_INPUT } from '../../coordinator/protocol';
import type { Compute, ComputeApi, KernelJob } from './api';
import type { Backend } from './backend-choice';

export function makeCompute(
  api: Comlink.Remote<ComputeApi>,
  onOnnxRun?: (ep: string, fallbackReason?: string) => void,
  onUnitBackend?: (backend: Backend) => void,
): Compute {
  return async (wu, inputs, shard) => {
    if (wu.kind === 'onnx' && !(await api.onnxHasModel(wu.params.model))) {
      const bytes = (await shard(wu.inputs[ONNX_MODEL_INPUT])).slice(); // the cached copy stays here (and serves peers)
      await api.onnxAddModel(wu.params.model, Comlink.transfer(bytes, [bytes.buffer]));
    }
    const job = { kind: wu.kind, params: wu.params } as KernelJob;
    const out = await api.run(job, Comlink.transfer(inputs, Object.values(inputs).map((t) => t.buffer)));
    if (wu.kind === 'onnx' && onOnnxRun) {
      const last = await api.onnxLastRun();
      if (last) onOnnxRun(last.ep, last.fallbackReason);
    }
    if (onUnitBackend) {
      const ran = await api.lastUnitBackend();
      if (ran) onUnitBackend(ran);
    }
    return out;
  };
}
