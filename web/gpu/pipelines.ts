// Pipeline cache: one compiled pipeline per (device, kernel, configuration), so a stream of work
// units never recompiles a shader. A kernel's configuration is a set of u32 constants prepended to
// its WGSL source (function-scope arrays in WGSL need const sizes, which `override`s cannot give).

export interface KernelSource {
  /** Names the kernel in the cache key and in GPU error messages. */
  label: string;
  code: string;
  entryPoint?: string;
}

export type KernelConstants = Record<string, number>;

const caches = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/**
 * The WGSL that the configuration compiles to: the kernel's directives (`enable`, `requires`,
 * global `diagnostic`, which WGSL wants before any declaration), `const NAME: u32 = VALUEu;`
 * lines, then the rest of the kernel.
 */
export function specialise(code: string, constants: KernelConstants): string {
  const directive = /^(enable|requires|diagnostic)\b.*$/gm;
  const directives = code.match(directive) ?? [];
  const lines = Object.entries(constants).map(([name, value]) => {
    if (!/^[A-Z][A-Z0-9_]*$/.test(name) || !Number.isInteger(value) || value < 0) throw new Error(`bad kernel constant ${name}=${value}`);
    return `const ${name}: u32 = ${value}u;`;
  });
  return [...directives, ...lines, code.replace(directive, '')].join('\n');
}

export function pipelineKey(kernel: KernelSource, constants: KernelConstants): string {
  return `${kernel.label}#${kernel.entryPoint ?? 'main'}#${JSON.stringify(constants)}`;
}

/** The cached pipeline, built on first use. */
function cacheFor(device: GPUDevice): Map<string, GPUComputePipeline> {
  let cache = caches.get(device);
  if (!cache) {
    cache = new Map();
    caches.set(device, cache);
  }
  return cache;
}

export function getPipeline(device: GPUDevice, kernel: KernelSource, constants: KernelConstants = {}): GPUComputePipeline {
  const cache = cacheFor(device);
  const key = pipelineKey(kernel, constants);
  let pipeline = cache.get(key);
  if (!pipeline) {
    const module = device.createShaderModule({ label: kernel.label, code: specialise(kernel.code, constants) });
    pipeline = device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: kernel.entryPoint ?? 'main' } });
    cache.set(key, pipeline);
  }
  return pipeline;
}

/**
 * Compiles pipelines concurrently (createComputePipelineAsync) into the cache, so a caller about
 * to use many configurations (the autotuner) does not wait for each compile in turn.
 */
export async function preparePipelines(device: GPUDevice, specs: { kernel: KernelSource; constants: KernelConstants }[]): Promise<void> {
  const target = cacheFor(device);
  await Promise.all(
    specs.map(async ({ kernel, constants }) => {
      const key = pipelineKey(kernel, constants);
      if (target.has(key)) return;
      const module = device.createShaderModule({ label: kernel.label, code: specialise(kernel.code, constants) });
      const pipeline = await device.createComputePipelineAsync({ label: key, layout: 'auto', compute: { module, entryPoint: kernel.entryPoint ?? 'main' } });
      target.set(key, pipeline);
    }),
  );
}

/** How many pipelines the device's cache holds (tests check that a second unit adds none). */
export function cachedPipelineCount(device: GPUDevice): number {
  return caches.get(device)?.size ?? 0;
}
