// WebGPU in Node through Dawn (the `webgpu` npm package, dawn.node): installs `navigator.gpu` and
// the WebGPU globals (GPUBufferUsage, GPUMapMode, …) so that web/gpu's modules — written for the
// browser — run unchanged. On a machine with a GPU, Dawn uses the vendor's Vulkan driver; without
// one, SwiftShader's Vulkan driver (VK_ICD_FILENAMES, see DESIGN.md) gives a slow software adapter.
import { existsSync } from 'node:fs';

/** The SwiftShader Vulkan driver Debian's Chromium ships (tests and machines without a GPU). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export function swiftShaderAvailable(): boolean {
  return existsSync(SWIFTSHADER_ICD);
}

/**
 * Points the Vulkan loader at SwiftShader, unless a driver was chosen already. Must run before the
 * first adapter request: the loader reads the variable when Dawn creates its Vulkan instance.
 */
export function useSwiftShader() {
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
}

let installed: Promise<GPU> | null = null;

/** Loads dawn.node once and exposes it as `navigator.gpu`; resolves to that GPU object. */
export function installWebGpu(): Promise<GPU> {
  installed ??= (async () => {
    // Dawn complains on stderr when XDG_RUNTIME_DIR is unset (it is harmless there: no display).
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const gpu = create([]) as GPU;
    const nav = (globalThis as { navigator?: object }).navigator;
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    return gpu;
  })();
  installed.catch(() => (installed = null));
  return installed;
}
