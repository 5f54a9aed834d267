// The import graph of the source tree (relative imports of .ts and .svelte files, resolved to files),
// for the layout test and for measuring the layout: modules, edges, cycles, imports across folders.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface Module {
  /** Path from the repository root, e.g. `coordinator/http/server.ts`. */
  path: string;
  /** Modules it imports (paths from the root). */
  imports: Set<string>;
  /** Bare specifiers it imports: packages and `node:` modules. */
  packages: Set<string>;
  /** Modules it starts as a worker or thread (`new URL('./x.ts', import.meta.url)`): not imports, so not cycles. */
  spawns: Set<string>;
}

const SPECIFIER = /(?:^|[\s;}])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;}])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|new URL\(\s*['"](\.[^'"]+)['"]\s*,\s*import\.meta\.url/gm;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(ts|svelte)$/.test(name) && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function resolveImport(from: string, spec: string): string | null {
  const base = resolve(dirname(from), spec.replace(/\?.*$/, ''));
  const stem = base.replace(/\.js$/, '');
  for (const cand of [base, `${stem}.ts`, join(stem, 'index.ts')]) {
    if (existsSync(cand) && statSync(cand).isFile()) return cand;
  }
  return null;
}

/** Every module under `dirs` (folders relative to the root) with what it imports. */
export function importGraph(dirs: string[]): Map<string, Module> {
  const graph = new Map<string, Module>();
  for (const dir of dirs) {
    for (const file of sourceFiles(join(ROOT, dir))) {
      const text = readFileSync(file, 'utf8');
      const mod: Module = { path: relative(ROOT, file), imports: new Set(), packages: new Set(), spawns: new Set() };
      for (const m of text.matchAll(SPECIFIER)) {
        const spec = m[1] ?? m[2] ?? m[3] ?? m[4];
        if (!spec.startsWith('.')) {
          mod.packages.add(spec);
          continue;
        }
        const target = resolveImport(file, spec);
        if (target && /\.(ts|svelte)$/.test(target)) (m[4] ? mod.spawns : mod.imports).add(relative(ROOT, target));
      }
      graph.set(mod.path, mod);
    }
  }
  return graph;
}

/** Strongly connected groups of more than one module (or a module importing itself): the import cycles. */
export function importCycles(graph: Map<string, Module>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.imports ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1 || graph.get(v)!.imports.has(v)) out.push(group.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** The folder a module belongs to for layering: `coordinator/http`, `web/gpu`; top-level files are their own folder's. */
export function folderOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0];
}

export const isTest = (path: string) => /\.(test|spec)\.ts$/.test(path);
