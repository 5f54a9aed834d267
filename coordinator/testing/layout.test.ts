// The layout's rules (ARCHITECTURE.md), checked on the real import graph: web/ and the TypeScript
// client reach coordinator/ only through coordinator/protocol/, which imports no node: module (nor
// does the client's library, which browsers load); no import cycles; no folder imports a folder
// above it; test rigs and tools are imported by nothing in production.
import { builtinModules } from 'node:module';
import { describe, expect, test } from 'vitest';
import { folderOf, importCycles, importGraph, isTest, type Module } from './import-graph.js';

/** Each folder's layer, lowest first: a module may import its own folder and folders of lower layers. */
const LAYERS: Record<string, number> = {
  'coordinator/protocol': 0,
  'coordinator/util': 0,
  'coordinator/access': 1,
  'coordinator/ledger': 2,
  'coordinator/store': 3,
  'coordinator/jobs': 4,
  'coordinator/swarm': 5,
  'coordinator/work': 6,
  'coordinator/socket': 7,
  'coordinator/http': 8,
  coordinator: 9, // app.ts, cli.ts: assemble the parts
  'coordinator/testing': 10,
  'coordinator/tools': 11,
  'web/gpu': 1,
  'web/onnx': 1,
  'web/cpu': 2,
  'web/store': 3,
  'web/p2p': 4,
  'web/worker': 4,
  'web/client': 5,
  'web/app': 6,
  'web/widget': 6,
  'web/bench': 6,
  'web/selftest': 6,
  // The TypeScript client (tabgrid/client) and its CLI: over the protocol alone; the dashboard uses it.
  'clients/typescript': 1,
};

/** Packages the browser-safe protocol may import. */
const PROTOCOL_PACKAGES = new Set(['zod', '@bufbuild/protobuf', 'onnx-buf']);

const graph = importGraph(['coordinator', 'web', 'clients/typescript']);
const production = new Map([...graph].filter(([path]) => !isTest(path)));
const edgesOf = (g: Map<string, Module>, filter: (m: Module) => boolean) => [...g.values()].filter(filter).flatMap((m) => [...m.imports].map((to) => `${m.path} -> ${to}`));
const edges = (filter: (m: Module) => boolean) => edgesOf(production, filter);

/** Imports from a folder into another folder of the same layer or above. */
function upwardImports(g: Map<string, Module>): string[] {
  return edgesOf(g, () => true).filter((e) => {
    const [from, to] = e.split(' -> ').map(folderOf);
    return from !== to && LAYERS[to] >= LAYERS[from];
  });
}

describe('layout', () => {
  test('the graph is read: every folder has a layer, and the known edges are seen', () => {
    expect(production.size).toBeGreaterThan(100);
    expect([...new Set([...production.keys()].map(folderOf))].filter((f) => !(f in LAYERS))).toEqual([]);
    expect(production.get('coordinator/http/server.ts')?.imports).toContain('coordinator/http/job-routes.ts');
    expect(production.get('web/client/coordinator-client.ts')?.imports).toContain('coordinator/protocol/npy.ts');
  });

  test('web/ imports nothing of coordinator/ but coordinator/protocol/', () => {
    expect(edges((m) => m.path.startsWith('web/')).filter((e) => / -> coordinator\//.test(e) && !/ -> coordinator\/protocol\//.test(e))).toEqual([]);
  });

  test('the TypeScript client imports nothing of coordinator/ but protocol/, and its library no node: module', () => {
    const client = [...production.values()].filter((m) => m.path.startsWith('clients/typescript/'));
    expect(client.map((m) => m.path)).toEqual(expect.arrayContaining(['clients/typescript/index.ts', 'clients/typescript/cli.ts']));
    expect(edges((m) => m.path.startsWith('clients/')).filter((e) => !/ -> (coordinator\/protocol|clients\/typescript)\//.test(e))).toEqual([]);
    // The CLI (cli.ts) is for Node; everything else is what browsers load.
    const node = new Set(builtinModules);
    const library = client.filter((m) => !/^clients\/typescript\/cli\.ts$/.test(m.path));
    expect(library.flatMap((m) => [...m.packages].filter((p) => p.startsWith('node:') || node.has(p)).map((p) => `${m.path} -> ${p}`))).toEqual([]);
    expect(production.get('web/app/pages/Dashboard.svelte')?.imports).toContain('clients/typescript/index.ts');
  });

  test('coordinator/protocol/ is browser-safe: no node: module, no package but its own few, nothing outside itself', () => {
    const node = new Set(builtinModules);
    const protocol = [...production.values()].filter((m) => m.path.startsWith('coordinator/protocol/'));
    expect(protocol.length).toBeGreaterThan(5);
    const bad = protocol.flatMap((m) => [...m.packages].filter((p) => p.startsWith('node:') || node.has(p) || !PROTOCOL_PACKAGES.has(p)).map((p) => `${m.path} -> ${p}`));
    expect(bad).toEqual([]);
    expect(edges((m) => m.path.startsWith('coordinator/protocol/')).filter((e) => !/ -> coordinator\/protocol\//.test(e))).toEqual([]);
  });

  test('no import cycles', () => {
    expect(importCycles(production)).toEqual([]);
  });

  test('no folder imports a folder of its own layer or above', () => {
    expect(upwardImports(production)).toEqual([]);
  });

  test('production code imports no test rig and no tool', () => {
    const rigs = edges((m) => !/^coordinator\/(testing|tools)\//.test(m.path)).filter((e) => / -> coordinator\/(testing|tools)\//.test(e));
    expect(rigs).toEqual([]);
  });

  test('the checks can fail: an upward import and a cycle are caught', () => {
    const fake = new Map(production);
    const mod = (path: string, imports: string[]): Module => ({ path, imports: new Set(imports), packages: new Set(), spawns: new Set() });
    fake.set('coordinator/util/a.ts', mod('coordinator/util/a.ts', ['coordinator/util/b.ts']));
    fake.set('coordinator/util/b.ts', mod('coordinator/util/b.ts', ['coordinator/util/a.ts']));
    fake.set('coordinator/store/c.ts', mod('coordinator/store/c.ts', ['coordinator/work/trust.ts']));
    expect(importCycles(fake)).toEqual([['coordinator/util/a.ts', 'coordinator/util/b.ts']]);
    expect(upwardImports(fake)).toEqual(['coordinator/store/c.ts -> coordinator/work/trust.ts']);
  });
});
