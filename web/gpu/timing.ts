// Timing for tuning and benchmarks: the median of several runs after warm-up, so one slow run
// (a compile, a GC pause, a busy CPU) does not decide anything.

/** Median seconds of `runs` calls of `once` after `warmup` untimed calls. */
export async function medianSeconds(once: () => Promise<void>, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < Math.max(1, runs); i++) {
    const t0 = performance.now();
    await once();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)];
}

/** Median seconds of the GPU work `encode` records: submit, then wait until the queue is done. */
export function timeGpu(device: GPUDevice, encode: (encoder: GPUCommandEncoder) => void, runs: number, warmup = 1): Promise<number> {
  return medianSeconds(
    async () => {
      const encoder = device.createCommandEncoder();
      encode(encoder);
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
    },
    runs,
    warmup,
  );
}
