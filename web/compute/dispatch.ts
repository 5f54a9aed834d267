// Runs one work unit in the compute worker, by job kind. Inputs are transferred, not copied.
import * as Comlink from 'comlink';
import { ONNX_MODEL_INPUT } from '../../coordinator/protocol';
import type { Compute } from '../client/coordinator-client';
import type { ComputeApi } from '../worker/api';

export function makeCompute(api: Comlink.Remote<ComputeApi>, onOnnxRun?: (ep: string, fallbackReason?: string) => void): Compute {
  return async (wu, inputs, shard) => {
    if (wu.kind === 'matmul') {
      const { m, k, n } = wu.params;
      return api.matmul(Comlink.transfer(inputs.a, [inputs.a.buffer]), Comlink.transfer(inputs.b, [inputs.b.buffer]), m, k, n);
    }
    const p = wu.params;
    if (!(await api.onnxHasModel(p.model))) {
      const bytes = (await shard(wu.inputs[ONNX_MODEL_INPUT])).slice(); // the cached copy stays here (and serves peers)
      await api.onnxAddModel(p.model, Comlink.transfer(bytes, [bytes.buffer]));
    }
    const feeds = p.inputs.map((spec) => ({ name: spec.name, shape: spec.shape, data: inputs[spec.name] }));
    const run = await api.onnxRun(
      p.model,
      Comlink.transfer(feeds, feeds.map((f) => f.data.buffer)),
      p.outputs.map((o) => o.name),
    );
    onOnnxRun?.(run.ep, run.fallbackReason);
    return run.data;
  };
}
