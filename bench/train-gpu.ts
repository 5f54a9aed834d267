// `npm run bench:train-gpu -- [--swiftshader] [--quick]`: the WGSL training loop against the TS
// one, divergence and speed (coordinator/tools/gpu-kit/train-bench.ts; the GPU kit's `run.sh train`).
// Without VK_ICD_FILENAMES it runs on SwiftShader where Chromium ships it.
export {};
await import('../coordinator/tools/native-volunteer/raw-loader.js');
const { swiftShaderAvailable, useSwiftShader } = await import('../coordinator/tools/native-volunteer/webgpu.js');
const { trainBenchCli } = await import('../coordinator/tools/gpu-kit/train-bench.js');

if (!process.env.VK_ICD_FILENAMES && swiftShaderAvailable()) useSwiftShader();
await trainBenchCli(process.argv.slice(2));
process.exit(0);
