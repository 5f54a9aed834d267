// Writes one of the small built-in models (the tests' MLP or conv net) to stdout as .onnx, for
// trying the onnx job kind without a model of your own: `npx tsx coordinator/tools/demo-model.ts mlp > mlp.onnx`.
import { convNetModel, mlpModel } from '../testing/test-models.js';

const which = process.argv[2] ?? 'mlp';
const models: Record<string, () => Uint8Array> = { mlp: mlpModel, convnet: convNetModel };
if (!Object.hasOwn(models, which)) {
  console.error(`usage: demo-model.ts mlp|convnet > model.onnx`);
  process.exit(2);
}
process.stdout.write(models[which]());
