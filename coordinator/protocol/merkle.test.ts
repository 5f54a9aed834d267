// The Merkle tree behind ledger seals against an independent, literal transcription of RFC 6962
// §2.1 (recursive MTH and PATH, split at the largest power of two below n) and the RFC test vectors
// used by Certificate Transparency implementations; then the path check (RFC 9162 §2.1.3.2).
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { auditPath, leafInput, levelsRoot, merkleLevels, rootFromAuditPath, toHex, fromHex } from './merkle.js';

const H = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();

/** RFC 6962 MTH over raw leaf data. */
function mth(d: Buffer[]): Buffer {
  if (d.length === 0) return H();
  if (d.length === 1) return H(Buffer.from([0]), d[0]);
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return H(Buffer.from([1]), mth(d.slice(0, k)), mth(d.slice(k)));
}

/** RFC 6962 PATH(m, D[n]). */
function path(m: number, d: Buffer[]): Buffer[] {
  if (d.length <= 1) return [];
  let k = 1;
  while (k * 2 < d.length) k *= 2;
  return m < k ? [...path(m, d.slice(0, k)), mth(d.slice(k))] : [...path(m - k, d.slice(k)), mth(d.slice(0, k))];
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest();
const leaves = (d: Buffer[]) => d.map((x) => sha(leafInput(x)));
const data = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`entry ${i}`));

// The leaves and tree heads of the RFC 6962 test vectors (certificate-transparency merkle_tree_test).
const RFC_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map((h) => Buffer.from(h, 'hex'));
const RFC_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

describe('RFC 6962 Merkle tree', () => {
  test.each(RFC_ROOTS.map((root, i) => [i + 1, root] as const))('the RFC test vector with %i leaves has root %s', (n, root) => {
    expect(toHex(levelsRoot(merkleLevels(leaves(RFC_LEAVES.slice(0, n)), sha)))).toBe(root);
    expect(mth(RFC_LEAVES.slice(0, n)).toString('hex')).toBe(root); // and so does the reference
  });

  test.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 100])('%i leaves: root and every audit path match the recursive reference', async (n) => {
    const d = data(n);
    const levels = merkleLevels(leaves(d), sha);
    const root = levelsRoot(levels);
    expect(toHex(root)).toBe(mth(d).toString('hex'));
    for (let i = 0; i < n; i++) {
      const p = auditPath(levels, i);
      expect(p.map(toHex)).toEqual(path(i, d).map((x) => x.toString('hex')));
      expect(toHex((await rootFromAuditPath(i, n, sha(leafInput(d[i])), p, sha))!)).toBe(toHex(root));
    }
  });

  test.each([2, 3, 5, 7, 8, 9, 13])('%i leaves: a path does not verify for another leaf or index, with a sibling changed, added or missing', async (n) => {
    const d = data(n);
    const levels = merkleLevels(leaves(d), sha);
    const root = toHex(levelsRoot(levels));
    const check = async (i: number, size: number, leaf: Buffer, p: Uint8Array[]) => {
      const r = await rootFromAuditPath(i, size, sha(leafInput(leaf)), p, sha);
      return r !== null && toHex(r) === root;
    };
    for (let i = 0; i < n; i++) {
      const p = auditPath(levels, i);
      expect(await check(i, n, d[i], p)).toBe(true);
      expect(await check(i, n, Buffer.from('forged'), p)).toBe(false);
      expect(await check((i + 1) % n, n, d[i], p)).toBe(false);
      // (The size itself is not bound by a path — the seal's signature covers its range.)
      expect(await check(i, n, d[i], [...p, fromHex('00'.repeat(32))])).toBe(false);
      expect(await check(i, n, d[i], p.slice(1))).toBe(false);
      if (p.length) expect(await check(i, n, d[i], [fromHex('ff'.repeat(32)), ...p.slice(1)])).toBe(false);
    }
    expect(await rootFromAuditPath(n, n, sha(leafInput(d[0])), auditPath(levels, 0), sha)).toBeNull();
    expect(await rootFromAuditPath(-1, n, sha(leafInput(d[0])), auditPath(levels, 0), sha)).toBeNull();
  });

  test('an empty tree has no root to seal', () => {
    expect(() => merkleLevels([], sha)).toThrow(/at least one leaf/);
  });
});
