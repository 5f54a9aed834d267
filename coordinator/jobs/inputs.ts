// Loading a job's uploaded inputs, shared by the job kinds: a shard that must exist, parse as a
// float32 .npy, and have the rank the kind needs — each failure a JobInputError (HTTP 400) that
// names the input and says what is wrong.
import { LIMITS } from '../protocol/index.js';
import { NpyError, parseNpy, type Tensor } from '../protocol/npy.js';
import type { ShardStore } from '../store/shards.js';
import { JobInputError } from './types.js';

/** `requirement` completes "inputs.<label>: …", e.g. "must be a 2-D matrix". */
export async function loadInputTensor(shards: ShardStore, sha: string, label: string, rank: number, requirement: string): Promise<Tensor> {
  const bytes = await shards.get(sha);
  if (!bytes) throw new JobInputError(`inputs.${label}: no shard ${sha} (upload it with POST /api/shards first)`);
  let t: Tensor;
  try {
    t = parseNpy(bytes);
  } catch (err) {
    throw new JobInputError(`inputs.${label}: ${err instanceof NpyError ? err.message : 'unreadable .npy'}`);
  }
  if (t.shape.length !== rank) throw new JobInputError(`inputs.${label}: ${requirement}, got shape (${t.shape.join(', ')})`);
  if (t.shape.some((d) => d < 1 || d > LIMITS.maxDim)) {
    throw new JobInputError(`inputs.${label}: every dimension must be between 1 and ${LIMITS.maxDim}, got ${t.shape.join('×')}`);
  }
  return t;
}

/** The largest magnitude in t (0 for an empty tensor; NaN when any value is NaN): scales the float error bounds. */
export function maxAbs(t: Float32Array): number {
  let m = 0;
  for (const v of t) {
    const a = Math.abs(v);
    if (Number.isNaN(a)) return a;
    if (a > m) m = a;
  }
  return m;
}

/** Parsed shards by their bytes: a shard never changes, and every check of a job reads the same few. */
const parsedShards = new WeakMap<Uint8Array, Float32Array>();

/** The values of a stored float32 .npy shard, parsed once per cached copy of its bytes. */
export function shardValues(bytes: Uint8Array): Float32Array {
  let values = parsedShards.get(bytes);
  if (!values) parsedShards.set(bytes, (values = parseNpy(bytes).data));
  return values;
}
