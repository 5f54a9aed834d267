// Receipts are verified in the browser (WebCrypto): the volunteer page checks each entry's hash,
// its Merkle audit path to its seal's root and the seal's Ed25519 signature. Receipts sealed by the
// coordinator's code in Node (seals of 7 and 5 entries, so audit paths of 1–3 hashes) are served
// to a real volunteer page, some of them tampered with: exactly the untouched ones show as verified.
// Not about the backend: the volunteer pages compute on the CPU (forced with ?backend=cpu; the
// faster one on this machine, where WebGPU is SwiftShader).
import { expect, test } from './fixtures';
import { generateKeyPairSync } from 'node:crypto';
import { GENESIS_HASH, makeEntry, makeSealer } from '../coordinator/ledger/chain';
import type { LedgerEntry, LedgerReceipt, Receipts } from '../coordinator/protocol';
import { randomMatrix } from '../coordinator/testing/helpers';
import { openVolunteer, startGrid, uploadMatrix } from './grid';

function sealedReceipts(volunteerId: string): { key: string; receipts: LedgerReceipt[] } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const other = makeSealer(generateKeyPairSync('ed25519').privateKey);
  const seal = makeSealer(privateKey);
  const entries: LedgerEntry[] = [];
  for (let seq = 1; seq <= 12; seq++) {
    entries.push(makeEntry({ seq, ts: Date.now(), volunteerId, jobId: 'j_x', wuId: `j_x.${seq}`, amount: 100 * seq, prevHash: entries.at(-1)?.hash ?? GENESIS_HASH }));
  }
  const first = seal(entries.slice(0, 7)).receipts; // all untouched
  const [r8, r9, r10, r11, r12] = seal(entries.slice(7)).receipts;
  const tampered: LedgerReceipt[] = [
    { ...r8, entry: { ...r8.entry, amount: r8.entry.amount * 10 } },
    { ...r9, path: [r9.path![0].replace(/^./, (c) => (c === 'a' ? 'b' : 'a')), ...r9.path!.slice(1)] },
    { ...r10, seal: { ...r10.seal!, root: 'a'.repeat(64) } },
    { ...r11, seal: other(entries.slice(7)).seal },
    { ...r12, path: r11.path },
  ];
  return { key: String(publicKey.export({ format: 'jwk' }).x), receipts: [...first, ...tampered].reverse() };
}

test('the volunteer page verifies sealed receipts with WebCrypto and flags tampered ones', async ({ browser }) => {
  const grid = await startGrid();
  try {
    const page = await openVolunteer(browser, grid, { backend: 'cpu' });
    const volunteerId = (await page.getByTestId('volunteer-id').textContent())!;
    const { key, receipts } = sealedReceipts(volunteerId);
    await page.route('**/api/volunteers/*/receipts*', (route) =>
      route.fulfill({ json: { volunteerId, coordinatorPublicKey: key, credit: 0, receipts } satisfies Receipts }),
    );
    // Credit earned makes the page fetch its receipts again: now the ones above.
    const a = await uploadMatrix(grid, 8, 8, randomMatrix(8, 8, 1));
    const jobId = await grid.submitJob({ kind: 'matmul', inputs: { a, b: a }, replication: 1 });
    expect((await grid.waitForJob(jobId, 60_000)).state).toBe('done');
    await expect(page.getByTestId('receipt')).toHaveCount(12, { timeout: 10_000 });
    const verdict = async (seq: number) => page.getByTestId('receipt').filter({ has: page.locator(`td:first-child:text-is("${seq}")`) }).locator('[data-verified]').getAttribute('data-verified');
    await expect.poll(async () => Promise.all(Array.from({ length: 12 }, (_, i) => verdict(i + 1)))).toEqual([
      ...Array(7).fill('true'),
      ...Array(5).fill('false'),
    ]);
  } finally {
    await grid.stop();
  }
});
