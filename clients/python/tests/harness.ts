// The Node side of the Python client's tests (run with `node --import tsx`):
//
//   harness.ts workers --url URL [--count N]     N sim workers (matmul, attention and onnx on
//                                                onnxruntime-node) that compute until stdin closes;
//                                                stdin lines `stop` / `start` disconnect and reconnect them
//   harness.ts model mlp|convnet OUT.onnx        write one of the project's small test models
//   harness.ts reference MODEL.onnx OUTDIR NAME=IN.npy…
//                                                run the model on onnxruntime-node (CPU EP) and write
//                                                each output as OUTDIR/<output>.npy
//
// Every import of the coordinator's code is here, in this one file.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { parseNpy, toNpy } from '../../../coordinator/protocol/npy.js';
import { convNetModel, mlpModel } from '../../../coordinator/testing/test-models.js';
import { SimWorker } from '../../../coordinator/testing/sim-worker.js';

const KINDS = ['matmul', 'attention', 'onnx', 'train'];

async function workers(args: string[]) {
  const { values } = parseArgs({ args, options: { url: { type: 'string' }, count: { type: 'string' } } });
  if (!values.url) throw new Error('--url is required');
  const url = values.url;
  const count = Number(values.count ?? 2);
  let running: SimWorker[] = [];
  const start = async () => {
    running = Array.from({ length: count }, (_, i) => new SimWorker({ url, name: `py-test-${i + 1}`, kinds: KINDS }));
    await Promise.all(running.map((w) => w.connect()));
  };
  const stop = () => {
    for (const w of running) w.close();
    running = [];
  };
  await start();
  console.log(`ready ${count}`);
  // Commands on stdin, one per line, each answered with a line once done; EOF ends the workers.
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = line.trim();
    if (cmd === 'stop') stop();
    else if (cmd === 'start') await start();
    else if (cmd) {
      console.log(`unknown command ${cmd}`);
      continue;
    }
    if (cmd) console.log(`${cmd} ok`);
  }
  stop();
  process.exit(0);
}

function model(args: string[]) {
  const [which, out] = args;
  const models: Record<string, () => Uint8Array> = { mlp: mlpModel, convnet: convNetModel };
  if (!out || !Object.hasOwn(models, which)) throw new Error('usage: model mlp|convnet OUT.onnx');
  writeFileSync(out, models[which]());
}

async function reference(args: string[]) {
  const [modelPath, outDir, ...feeds] = args;
  if (!outDir || feeds.length === 0) throw new Error('usage: reference MODEL.onnx OUTDIR NAME=IN.npy…');
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(readFileSync(modelPath));
  const input: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const feed of feeds) {
    const [name, file] = feed.split('=');
    const t = parseNpy(readFileSync(file));
    input[name] = new ort.Tensor('float32', t.data, t.shape);
  }
  const out = await session.run(input);
  for (const [name, t] of Object.entries(out)) writeFileSync(join(outDir, `${name}.npy`), toNpy(t.dims, t.data as Float32Array));
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[]) => unknown> = { workers, model, reference };
if (!Object.hasOwn(commands, command)) {
  console.error('usage: harness.ts workers|model|reference …');
  process.exit(2);
}
Promise.resolve(commands[command](rest)).catch((err: Error) => {
  console.error(`harness: ${err.stack ?? err.message}`);
  process.exit(1);
});
