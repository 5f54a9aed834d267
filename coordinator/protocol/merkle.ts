// RFC 6962 (Certificate Transparency) Merkle trees over ledger entry hashes: the tree head a seal
// signs, the audit path that proves one entry is under it, and the check of such a path. No Node
// APIs here: the browser verifies receipts with the same code, each side passing its own SHA-256.
// leaf = H(0x00 ‖ entry hash), node = H(0x01 ‖ left ‖ right); an odd node at the end of a level
// moves up unchanged, which builds exactly the RFC's tree (split at the largest power of two < n).

/** A synchronous SHA-256 (node:crypto on the coordinator). */
export type Sha256 = (data: Uint8Array) => Uint8Array;
/** SHA-256 that may be asynchronous (WebCrypto in the browser). */
export type AnySha256 = (data: Uint8Array) => Uint8Array | Promise<Uint8Array>;

function prefixed(prefix: number, ...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(1 + parts.reduce((n, p) => n + p.length, 0));
  out[0] = prefix;
  let at = 1;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const leafInput = (entryHash: Uint8Array) => prefixed(0x00, entryHash);
export const nodeInput = (left: Uint8Array, right: Uint8Array) => prefixed(0x01, left, right);

/** Every level of the tree over these leaves (already leaf-hashed), leaves first, the root last. */
export function merkleLevels(leafHashes: Uint8Array[], sha256: Sha256): Uint8Array[][] {
  if (leafHashes.length === 0) throw new Error('a Merkle tree needs at least one leaf');
  const levels = [leafHashes];
  for (let level = leafHashes; level.length > 1; ) {
    const up: Uint8Array[] = [];
    for (let i = 0; i < level.length; i += 2) up.push(i + 1 < level.length ? sha256(nodeInput(level[i], level[i + 1])) : level[i]);
    levels.push(up);
    level = up;
  }
  return levels;
}

/** The root of a tree built by merkleLevels. */
export const levelsRoot = <T>(levels: T[][]): T => levels[levels.length - 1][0];

/** The audit path of leaf `index`: its siblings from the bottom up (RFC 6962 PATH); levels as bytes or hex. */
export function auditPath<T>(levels: T[][], index: number): T[] {
  const path: T[] = [];
  for (let l = 0, i = index; l < levels.length - 1; l++, i = Math.floor(i / 2)) {
    const sibling = i % 2 === 1 ? i - 1 : i + 1;
    if (sibling < levels[l].length) path.push(levels[l][sibling]);
  }
  return path;
}

/**
 * The root that leaf `index` of a tree of `size` leaves implies with this audit path (RFC 9162
 * §2.1.3.2), or null when the path cannot belong to such a tree (wrong length, index out of range).
 */
export async function rootFromAuditPath(
  index: number,
  size: number,
  leafHash: Uint8Array,
  path: Uint8Array[],
  sha256: AnySha256,
): Promise<Uint8Array | null> {
  if (!(index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of path) {
    if (sn === 0) return null; // path too long
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(nodeInput(p, r));
      // A right-edge node without a sibling at some levels: climb past them.
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(nodeInput(r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null; // else: path too short
}

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
