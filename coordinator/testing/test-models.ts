// Small models built in code for the tests and the bench (no downloads): an MLP and a conv net,
// with seeded weights so every run builds the same bytes.
import { randomMatrix } from './helpers.js';
import { buildModel } from '../protocol/onnx-builder.js';

/** x[batch,16] -> MatMul 16×32 + bias -> Relu -> MatMul 32×10 + bias -> logits[batch,10]. */
export function mlpModel(seed = 1): Uint8Array {
  return buildModel({
    name: 'mlp',
    inputs: [{ name: 'x', dims: ['batch', 16] }],
    outputs: [{ name: 'logits', dims: ['batch', 10] }],
    initializers: [
      { name: 'w1', dims: [16, 32], data: randomMatrix(16, 32, seed, -0.5, 0.5) },
      { name: 'b1', dims: [32], data: randomMatrix(1, 32, seed + 1, -0.1, 0.1) },
      { name: 'w2', dims: [32, 10], data: randomMatrix(32, 10, seed + 2, -0.5, 0.5) },
      { name: 'b2', dims: [10], data: randomMatrix(1, 10, seed + 3, -0.1, 0.1) },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'w1'], outputs: ['h0'] },
      { op: 'Add', inputs: ['h0', 'b1'], outputs: ['h1'] },
      { op: 'Relu', inputs: ['h1'], outputs: ['h2'] },
      { op: 'MatMul', inputs: ['h2', 'w2'], outputs: ['h3'] },
      { op: 'Add', inputs: ['h3', 'b2'], outputs: ['logits'] },
    ],
  });
}

/**
 * image[batch,1,8,8] -> Conv 3×3 (4 channels, same padding) -> Relu -> AveragePool 2×2 ->
 * Flatten -> Gemm 64×10 -> (logits[batch,10], features[batch,4,4,4]): two outputs.
 */
export function convNetModel(seed = 7): Uint8Array {
  return buildModel({
    name: 'convnet',
    inputs: [{ name: 'image', dims: ['batch', 1, 8, 8] }],
    outputs: [
      { name: 'logits', dims: ['batch', 10] },
      { name: 'features', dims: ['batch', 4, 4, 4] },
    ],
    initializers: [
      { name: 'cw', dims: [4, 1, 3, 3], data: randomMatrix(4, 9, seed, -0.5, 0.5) },
      { name: 'cb', dims: [4], data: randomMatrix(1, 4, seed + 1, -0.1, 0.1) },
      { name: 'fw', dims: [64, 10], data: randomMatrix(64, 10, seed + 2, -0.3, 0.3) },
      { name: 'fb', dims: [10], data: randomMatrix(1, 10, seed + 3, -0.1, 0.1) },
    ],
    nodes: [
      { op: 'Conv', inputs: ['image', 'cw', 'cb'], outputs: ['c0'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
      { op: 'Relu', inputs: ['c0'], outputs: ['c1'] },
      { op: 'AveragePool', inputs: ['c1'], outputs: ['features'], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
      { op: 'Flatten', inputs: ['features'], outputs: ['flat'], attrs: { axis: 1 } },
      { op: 'Gemm', inputs: ['flat', 'fw', 'fb'], outputs: ['logits'] },
    ],
  });
}

/**
 * x[batch,8] -> MatMul 8×8 -> CumSum over axis 1 (reversed, exclusive) -> y[batch,8]. onnxruntime-web
 * 1.30's WebGPU EP fails to compile its CumSum shader (and would return zeros): the wasm fallback's case.
 */
export function cumsumModel(seed = 11): Uint8Array {
  return buildModel({
    name: 'cumsum',
    inputs: [{ name: 'x', dims: ['batch', 8] }],
    outputs: [{ name: 'y', dims: ['batch', 8] }],
    initializers: [{ name: 'w', dims: [8, 8], data: randomMatrix(8, 8, seed, -0.5, 0.5) }],
    nodes: [
      { op: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] },
      { op: 'Constant', inputs: [], outputs: ['axis'], attrs: { value_int: 1 } },
      { op: 'CumSum', inputs: ['h', 'axis'], outputs: ['y'], attrs: { reverse: 1, exclusive: 1 } },
    ],
  });
}
