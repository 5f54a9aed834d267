// The only place that asks for a WebGPU adapter and device. Reports what was found in the shape
// the protocol's DeviceInfo expects.
import type { DeviceInfo } from '../../coordinator/protocol';

export class WebGpuUnavailable extends Error {
  override name = 'WebGpuUnavailable';
}

export interface Gpu {
  device: GPUDevice;
  info: DeviceInfo;
}

const REPORTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension',
] as const;

export async function openGpu(onLost?: (reason: string) => void): Promise<Gpu> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new WebGpuUnavailable('this browser does not expose WebGPU (navigator.gpu is missing)');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new WebGpuUnavailable('WebGPU is present but no GPU adapter is available (blocked or unsupported hardware)');
  const requiredLimits: Record<string, number> = {};
  for (const name of ['maxBufferSize', 'maxStorageBufferBindingSize'] as const) requiredLimits[name] = adapter.limits[name];
  // Subgroups add a matmul candidate (shaders/matmul-vec4-subgroups.wgsl) where the adapter has them.
  const requiredFeatures: GPUFeatureName[] = adapter.features.has('subgroups') ? ['subgroups' as GPUFeatureName] : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  device.lost.then((info) => onLost?.(info.message || info.reason || 'device lost'));
  const ai = adapter.info;
  const name = [ai.vendor, ai.architecture, ai.device, ai.description].filter((s) => s && s.length > 0).join(' ') || 'unknown GPU';
  const limits: Record<string, number> = {};
  for (const l of REPORTED_LIMITS) limits[l] = adapter.limits[l];
  const fallback = (ai as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  return {
    device,
    info: {
      backend: 'webgpu',
      adapter: name.slice(0, 200),
      isFallbackAdapter: fallback ?? false,
      features: [...adapter.features].slice(0, 64),
      limits,
    },
  };
}
