// The registry of job kinds: one module per kind, looked up by the submission's `kind`.
import type { JobKindName } from '../protocol/index.js';
import { attention } from './attention.js';
import { matmul } from './matmul.js';
import { onnx } from './onnx.js';
import { train } from './train.js';
import type { JobKind } from './types.js';

export const jobKinds: Record<JobKindName, JobKind> = {
  matmul: matmul as JobKind,
  attention: attention as JobKind,
  onnx: onnx as JobKind,
  train: train as JobKind,
};

export function jobKind(name: string): JobKind | null {
  return Object.hasOwn(jobKinds, name) ? jobKinds[name as JobKindName] : null;
}

/** The kinds a worker that declares none can run: every kind that is not opt-in. */
export const undeclaredWorkerKinds: readonly string[] = Object.values(jobKinds)
  .filter((k) => !k.optIn)
  .map((k) => k.kind);
