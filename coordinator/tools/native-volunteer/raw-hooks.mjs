// Node module hooks for Vite's `?raw` imports: `import code from '…/matmul.wgsl?raw'` gets the
// file's text as its default export, as it does under Vite. web/gpu loads its WGSL this way, so the
// native volunteer runs the very same kernel sources in Node (registered by raw-loader.ts).
import { readFile } from 'node:fs/promises';

export async function resolve(specifier, context, nextResolve) {
  if (specifier.endsWith('?raw') && context.parentURL && /^(\.|\/|file:)/.test(specifier)) {
    return { url: new URL(specifier, context.parentURL).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('?raw')) {
    const text = await readFile(new URL(url.slice(0, -'?raw'.length)), 'utf8');
    return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
  }
  return nextLoad(url, context);
}
