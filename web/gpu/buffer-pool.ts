// Buffer pool: GPU buffers are recycled by (usage, size class) instead of being created and
// destroyed for every work unit. Sizes round up to a power of two (at least 256 bytes), so a
// stream of similar units reuses the same few buffers; idle buffers beyond a byte cap are freed.

const MIN_BYTES = 256;
const DEFAULT_IDLE_CAP = 512 * 1024 * 1024;

export function sizeClass(bytes: number): number {
  return Math.max(MIN_BYTES, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
}

export class BufferPool {
  private readonly idle = new Map<string, GPUBuffer[]>();
  private idleBytes = 0;
  /** Buffers created so far (tests check that repeated units stop creating them). */
  created = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly idleCap = DEFAULT_IDLE_CAP,
  ) {}

  /** A buffer of at least `bytes` with exactly `usage`. Bind it with an explicit size. */
  acquire(bytes: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const size = sizeClass(bytes);
    const list = this.idle.get(`${usage}:${size}`);
    const hit = list?.pop();
    if (hit) {
      this.idleBytes -= hit.size;
      return hit;
    }
    this.created++;
    return this.device.createBuffer({ size, usage });
  }

  release(...buffers: GPUBuffer[]) {
    for (const buffer of buffers) {
      if (this.idleBytes + buffer.size > this.idleCap) {
        buffer.destroy();
        continue;
      }
      const key = `${buffer.usage}:${buffer.size}`;
      const list = this.idle.get(key) ?? [];
      list.push(buffer);
      this.idle.set(key, list);
      this.idleBytes += buffer.size;
    }
  }

  /** A storage buffer holding `data` (written through the queue, no staging buffer to manage). */
  upload(data: Float32Array): GPUBuffer {
    const buffer = this.acquire(data.byteLength, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
    return buffer;
  }

  /** A uniform buffer holding `words` (u32 or f32 bit patterns). */
  uniform(words: ArrayBufferView<ArrayBuffer>): GPUBuffer {
    const buffer = this.acquire(words.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, words);
    return buffer;
  }

  /** An output storage buffer that can be copied out. */
  output(bytes: number): GPUBuffer {
    return this.acquire(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  }

  /** Copies `bytes` of `source` out through a pooled staging buffer. */
  async read(source: GPUBuffer, bytes: number, encoder?: GPUCommandEncoder): Promise<Float32Array> {
    const staging = this.acquire(bytes, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    const enc = encoder ?? this.device.createCommandEncoder();
    enc.copyBufferToBuffer(source, 0, staging, 0, bytes);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      const out = new Float32Array(staging.getMappedRange(0, bytes).slice(0));
      staging.unmap();
      return out;
    } finally {
      this.release(staging);
    }
  }
}

const pools = new WeakMap<GPUDevice, BufferPool>();

export function poolFor(device: GPUDevice): BufferPool {
  let pool = pools.get(device);
  if (!pool) {
    pool = new BufferPool(device);
    pools.set(device, pool);
  }
  return pool;
}
