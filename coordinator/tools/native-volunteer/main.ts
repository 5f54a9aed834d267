// Entry under tsx (`npm run volunteers -- --native …`): registers the `?raw` module hooks first, so
// that web/gpu's WGSL imports load the shader files as text, then runs the CLI. (The GPU kit's
// bundle has the WGSL inlined and starts at cli.ts.)
export async function main(argv: string[]) {
  await import('./raw-loader');
  const { runNativeCli } = await import('./cli');
  await runNativeCli(argv);
}
