// The classroom demo job: a square matmul whose inputs are the same for every room and every run
// (a fixed seed), so however many rooms start demos, the coordinator stores each size's inputs —
// and the tiles the matmul planner cuts them into — once (content-addressed shards: 20.3 MiB for
// all three sizes together, DEMO_STORAGE_BYTES).
import { toNpy } from '../protocol/npy.js';
import type { ShardStore } from '../store/shards.js';

/** Demo job sizes: m = k = n, and the output tile per work unit. */
export const DEMO_SIZES = { small: { n: 128, tile: 64 }, medium: { n: 512, tile: 128 }, large: { n: 1024, tile: 256 } } as const;
export type DemoSize = keyof typeof DEMO_SIZES;

/** n·n values in [-1, 1) from a fixed seed (mulberry32): the same matrix every time. */
function seededMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n * n);
  for (let i = 0; i < out.length; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** The size of toNpy's file for a float32 r×c matrix: its header padded to 64 bytes, then the data. */
function npyBytes(r: number, c: number): number {
  const header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${r}, ${c}), }`;
  return Math.ceil((10 + header.length + 1) / 64) * 64 + r * c * 4;
}

/**
 * Bytes of shards every demo together stores, once: per size the two n×n inputs, A's row blocks and
 * B's column blocks of `tile` (what the matmul planner stores for a job's units).
 */
export const DEMO_STORAGE_BYTES = Object.values(DEMO_SIZES).reduce(
  (sum, { n, tile }) => sum + 2 * npyBytes(n, n) + (n / tile) * (npyBytes(tile, n) + npyBytes(n, tile)),
  0,
);

/** The demo inputs of each size, stored once per coordinator run (and the same shards on every run). */
export class DemoInputs {
  private readonly made = new Map<DemoSize, Promise<{ a: string; b: string }>>();

  constructor(private readonly shards: ShardStore) {}

  get(size: DemoSize): Promise<{ a: string; b: string }> {
    let inputs = this.made.get(size);
    if (!inputs) {
      const { n } = DEMO_SIZES[size];
      const make = async () => ({
        a: await this.shards.put(toNpy([n, n], seededMatrix(n, 0xdec0 + n))),
        b: await this.shards.put(toNpy([n, n], seededMatrix(n, 0xdec1 + n))),
      });
      inputs = make();
      inputs.catch(() => this.made.delete(size));
      this.made.set(size, inputs);
    }
    return inputs;
  }
}
