// Launches shaders/matmul.wgsl. The pipeline is built once per device and reused.
import shaderSource from '../../shaders/matmul.wgsl?raw';

const TILE = 16;
const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();

function pipelineFor(device: GPUDevice): GPUComputePipeline {
  let p = pipelines.get(device);
  if (!p) {
    const module = device.createShaderModule({ label: 'matmul', code: shaderSource });
    p = device.createComputePipeline({ label: 'matmul', layout: 'auto', compute: { module, entryPoint: 'main' } });
    pipelines.set(device, p);
  }
  return p;
}

function upload(device: GPUDevice, data: Float32Array, usage: number): GPUBuffer {
  const buffer = device.createBuffer({ size: Math.max(4, data.byteLength), usage, mappedAtCreation: true });
  new Float32Array(buffer.getMappedRange()).set(data);
  buffer.unmap();
  return buffer;
}

/** C (m×n) = A (m×k) · B (k×n), all row-major float32. */
export async function gpuMatmul(device: GPUDevice, a: Float32Array, b: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
  if (a.length !== m * k || b.length !== k * n) throw new Error(`matmul inputs do not match ${m}×${k}·${k}×${n}`);
  const pipeline = pipelineFor(device);
  const outBytes = m * n * 4;
  const bufA = upload(device, a, GPUBufferUsage.STORAGE);
  const bufB = upload(device, b, GPUBufferUsage.STORAGE);
  const bufC = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const dims = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(dims, 0, new Uint32Array([m, k, n, 0]));
  const readback = device.createBuffer({ size: outBytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    const bind = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [bufA, bufB, bufC, dims].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(Math.ceil(n / TILE), Math.ceil(m / TILE));
    pass.end();
    enc.copyBufferToBuffer(bufC, 0, readback, 0, outBytes);
    device.queue.submit([enc.finish()]);
    await readback.mapAsync(GPUMapMode.READ);
    return new Float32Array(readback.getMappedRange().slice(0));
  } finally {
    for (const buf of [bufA, bufB, bufC, dims, readback]) buf.destroy();
  }
}
