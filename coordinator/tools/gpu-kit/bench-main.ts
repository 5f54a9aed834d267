// `npm run bench:native -- [--quick] …` under tsx: the GPU kit's bench without building the kit.
export async function main(argv: string[]) {
  await import('../native-volunteer/raw-loader');
  const { benchCli } = await import('./bench');
  await benchCli(argv);
}

main(process.argv.slice(2)).catch((err: Error) => {
  console.error(`bench: ${err.stack ?? err.message}`);
  process.exit(1);
});
