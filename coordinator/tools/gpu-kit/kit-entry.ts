// The GPU kit's bundle entry (WGSL inlined by the builder, so no module hooks here):
//   tabgrid-native.mjs [bench] [--quick] [--peak TFLOPS] [--no-torch]   the benchmark (default)
//   tabgrid-native.mjs train [--quick]                                  the training loop: GPU vs CPU
//   tabgrid-native.mjs volunteer --coordinator URL [--count N] …        native volunteers
import { benchCli } from './bench';

async function main(argv: string[]) {
  if (argv[0] === 'volunteer') {
    const { runNativeCli } = await import('../native-volunteer/cli');
    return runNativeCli(argv.slice(1));
  }
  if (argv[0] === 'train') {
    const { trainBenchCli } = await import('./train-bench');
    await trainBenchCli(argv.slice(1));
    return process.exit(0);
  }
  return benchCli(argv[0] === 'bench' ? argv.slice(1) : argv);
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`tabgrid: ${err.stack ?? err.message}`);
  process.exit(1);
});
