import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyExport, verifyReceipt } from '../../ledger/export.js';
import { toNpy } from '../../protocol/npy.js';
import type { LedgerExport, Receipt } from '../../protocol/index.js';
import { SimWorker } from '../sim-worker.js';
import { randomMatrix, runCli, startTestCoordinator, type TestCoordinator } from '../helpers.js';

let grid: TestCoordinator;
let worker: SimWorker;
let coordinatorKey: string;

beforeAll(async () => {
  grid = await startTestCoordinator();
  coordinatorKey = ((await (await grid.api('/api/info')).json()) as { coordinatorPublicKey: string }).coordinatorPublicKey;
  const a = await grid.uploadShard(toNpy([8, 3], randomMatrix(8, 3, 1)));
  const b = await grid.uploadShard(toNpy([3, 8], randomMatrix(3, 8, 2)));
  worker = new SimWorker({ url: grid.base });
  await worker.connect();
  const job = await grid.submitJob({ kind: 'matmul', inputs: { a, b }, tile: { rows: 4, cols: 4 }, replication: 1 });
  expect((await grid.waitForJob(job)).state).toBe('done');
});

afterAll(async () => {
  worker?.close();
  await grid?.stop();
});

describe('sealed receipts', () => {
  test('every credit message carries a receipt: the entry, the seal over its commit and its audit path', async () => {
    const credits = worker.messages.filter((m) => m.type === 'credit');
    expect(credits).toHaveLength(4);
    expect(worker.receipts).toHaveLength(4);
    for (const r of worker.receipts) {
      expect(r.entry.volunteerId).toBe(worker.volunteerId);
      expect(r.seal!.firstSeq).toBeLessThanOrEqual(r.entry.seq);
      expect(r.seal!.lastSeq).toBeGreaterThanOrEqual(r.entry.seq);
      expect(await verifyReceipt({ coordinatorPublicKey: coordinatorKey, ...r })).toMatchObject({ ok: true, message: expect.stringMatching(/^receipt OK/) });
    }
  });

  const flip = (s: string) => s.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'));
  test.each<[string, (r: Receipt) => unknown, RegExp]>([
    ['amount', (r) => ({ ...r, entry: { ...r.entry, amount: r.entry.amount * 10 } }), /entry altered/],
    ['volunteer', (r) => ({ ...r, entry: { ...r.entry, volunteerId: 'v_000000000000000000000000' } }), /entry altered/],
    ['seal signature', (r) => ({ ...r, seal: { ...r.seal!, signature: r.seal!.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) } }), /seal signature/],
    ['seal root', (r) => ({ ...r, seal: { ...r.seal!, root: flip(r.seal!.root) } }), /Merkle root/],
    ['seal range', (r) => ({ ...r, seal: { ...r.seal!, lastSeq: r.seal!.lastSeq + 1 } }), /audit path|seal signature/],
    ['audit path', (r) => ({ ...r, path: [...r.path!, 'f'.repeat(64)] }), /audit path/],
    ['seal missing', (r) => ({ ...r, seal: undefined }), /no seal/],
    ['key', (r) => ({ ...r, coordinatorPublicKey: new SimWorker({ url: 'http://x' }).publicKeyRaw }), /seal signature/],
  ])('a receipt with a changed %s fails', async (_what, tamper, reason) => {
    const receipt: Receipt = { coordinatorPublicKey: coordinatorKey, ...worker.receipts[0] };
    const check = await verifyReceipt(tamper(receipt));
    expect(check.ok).toBe(false);
    expect(check.message).toMatch(reason);
  });

  test.each<[string, (r: Receipt) => unknown]>([
    ['an audit path of 65 hashes', (r) => ({ ...r, path: Array(65).fill('a'.repeat(64)) })],
    ['a path hash that is not hex', (r) => ({ ...r, path: ['Z'.repeat(64)] })],
    ['a seal root that is not a sha-256', (r) => ({ ...r, seal: { ...r.seal!, root: 'abc' } })],
    ['an extra field', (r) => ({ ...r, credit: 1e9 })],
  ])('a receipt file with %s is not a receipt', async (_what, tamper) => {
    const check = await verifyReceipt(tamper({ coordinatorPublicKey: coordinatorKey, ...worker.receipts[0] }));
    expect(check).toMatchObject({ ok: false, message: expect.stringMatching(/^not a receipt/) });
  });

  test('`npm run ledger -- verify-receipt` checks a receipt file offline, optionally pinned to a key', () => {
    const file = join(grid.dir, 'receipt.json');
    writeFileSync(file, JSON.stringify({ coordinatorPublicKey: coordinatorKey, ...worker.receipts[1] }));
    // With '=': a base64url key begins with '-' one time in 64, which `--key K` would take for an option.
    const ok = runCli(['ledger', 'verify-receipt', file, `--key=${coordinatorKey}`]);
    expect(ok.status, ok.out).toBe(0);
    expect(ok.out).toMatch(/^receipt OK: ledger entry #2, .* sealed \(#\d+–#\d+\) and signed by coordinator/);
    const other = runCli(['ledger', 'verify-receipt', file, '--key', 'A'.repeat(43)]);
    expect(other.status, other.out).toBe(1);
    const dashed = runCli(['ledger', 'verify-receipt', file, `--key=-${'A'.repeat(42)}`]);
    expect(dashed.out).toContain(`not the expected -${'A'.repeat(42)}`); // taken as the key, not as an option
    writeFileSync(file, JSON.stringify({ coordinatorPublicKey: coordinatorKey, ...worker.receipts[1], entry: { ...worker.receipts[1].entry, amount: 1 } }));
    const bad = runCli(['ledger', 'verify-receipt', file]);
    expect(bad.status).toBe(1);
    expect(bad.out).toContain('entry altered');
  });
});

describe('public ledger export', () => {
  test('the API and the CLI export the whole ledger, and it verifies offline; an edit does not', async () => {
    const fromApi = (await (await grid.api('/api/ledger/export', { token: null })).json()) as LedgerExport;
    expect(fromApi.entries).toHaveLength(4);
    expect(verifyExport(fromApi, coordinatorKey).ok).toBe(true);

    const file = join(grid.dir, 'ledger.json');
    expect(runCli(['ledger', 'export', '--data', grid.dir, '--out', file]).status).toBe(0);
    const checked = runCli(['ledger', 'verify', '--file', file]);
    expect(checked.status).toBe(0);
    expect(checked.out).toContain('ledger export OK: 4 entries under');

    const dropped = { ...fromApi, entries: fromApi.entries.filter((e) => e.seq !== 2) };
    expect(verifyExport(dropped).ok).toBe(false);
    const edited = { ...fromApi, entries: fromApi.entries.map((e) => (e.seq === 3 ? { ...e, amount: e.amount + 1 } : e)) };
    expect(verifyExport(edited).message).toContain('entry #3');
    const unsealed = { ...fromApi, seals: fromApi.seals.slice(0, -1) };
    expect(verifyExport(unsealed).message).toMatch(/no seal covers this entry/);
    const forged = { ...fromApi, seals: fromApi.seals.map((x, i) => (i === 0 ? { ...x, root: 'a'.repeat(64) } : x)) };
    expect(verifyExport(forged).message).toMatch(/^seal #1–#\d+: Merkle root/);
  });
});
