// The credit ledger: append-only entries, each hash-chained to the one before. The coordinator
// signs no entry on its own: each commit that appends entries also writes one seal over them, the
// Ed25519-signed RFC 6962 Merkle root of their hashes (Certificate-Transparency style), so anyone
// holding the public key can check nothing was altered, and each entry's receipt (entry, seal,
// audit path) verifies on its own. Ledgers written before seals keep a signature on every entry.
import { hash, sign, type KeyObject } from 'node:crypto';
import { verifySignature } from '../access/keys.js';
import { auditPath, leafInput, levelsRoot, merkleLevels, type Sha256 } from '../protocol/merkle.js';
import { ledgerEntryCanonical, ledgerSealCanonical } from '../protocol/canonical.js';
import type { LedgerEntry, LedgerReceipt, LedgerSeal } from '../protocol/index.js';
import { ALTERED, BAD_SIGNATURE } from '../protocol/receipt-check.js';

export const GENESIS_HASH = '0'.repeat(64);

type Unhashed = Omit<LedgerEntry, 'hash' | 'signature'>;

export const sha256: Sha256 = (data) => hash('sha256', data, 'buffer');
const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** The hash covers every field but itself (and a legacy signature), in a fixed order. */
export function entryHash(e: Unhashed): string {
  return hash('sha256', ledgerEntryCanonical(e), 'hex');
}

export function makeEntry(fields: Unhashed): LedgerEntry {
  return { ...fields, hash: entryHash(fields) };
}

/** The entry that follows `prev` (the chain's last entry; null for the first), linked to it. */
export function nextEntry(prev: LedgerEntry | null, fields: Omit<Unhashed, 'seq' | 'prevHash'>): LedgerEntry {
  return makeEntry({ seq: (prev?.seq ?? 0) + 1, ...fields, prevHash: prev?.hash ?? GENESIS_HASH });
}

/** The Merkle tree over consecutive entries' hashes, every node in hex (each converted once). */
function entryTree(hashes: string[]): string[][] {
  const levels = merkleLevels(
    hashes.map((h) => sha256(leafInput(Buffer.from(h, 'hex')))),
    sha256,
  );
  return levels.map((level) => level.map(hex));
}

/** The root a seal over consecutive entries with these hashes must carry. */
export function sealRoot(hashes: string[]): string {
  return levelsRoot(entryTree(hashes));
}

/** Seals consecutive new entries: one signature for all of them, and each one's receipt. */
export type Sealer = (entries: LedgerEntry[]) => { seal: LedgerSeal; receipts: LedgerReceipt[] };

export function makeSealer(privateKey: KeyObject): Sealer {
  return (entries) => {
    const levels = entryTree(entries.map((e) => e.hash));
    const last = entries[entries.length - 1];
    const unsigned = { firstSeq: entries[0].seq, lastSeq: last.seq, headHash: last.hash, root: levelsRoot(levels) };
    const seal = { ...unsigned, signature: sign(null, Buffer.from(ledgerSealCanonical(unsigned)), privateKey).toString('base64url') };
    return { seal, receipts: entries.map((entry, i) => ({ entry, seal, path: auditPath(levels, i) })) };
  };
}

/**
 * Receipts for stored entries: each with the seal covering it and its audit path, rebuilt from
 * the hashes of all the entries under that seal (`sealOf` finds a seal and those hashes).
 */
export async function receiptsFor(
  entries: LedgerEntry[],
  sealOf: (seq: number) => Promise<{ seal: LedgerSeal; hashes: string[] } | null>,
): Promise<LedgerReceipt[]> {
  const trees = new Map<number, { seal: LedgerSeal; levels: string[][] }>();
  const out: LedgerReceipt[] = [];
  for (const entry of entries) {
    let hit = [...trees.values()].find((t) => entry.seq >= t.seal.firstSeq && entry.seq <= t.seal.lastSeq);
    if (!hit) {
      const found = await sealOf(entry.seq);
      hit = found ? { seal: found.seal, levels: entryTree(found.hashes) } : undefined;
      if (hit) trees.set(hit.seal.lastSeq, hit);
    }
    out.push(hit ? { entry, seal: hit.seal, path: auditPath(hit.levels, entry.seq - hit.seal.firstSeq) } : { entry });
  }
  return out;
}

export interface VerifyReport {
  ok: boolean;
  /** Entries whose hash, link and seal (or legacy signature) all verified. */
  checked: number;
  /** The first entry or seal that fails: `where` names it ("entry #3", "seal #5–#9"), `seq` is its (first) entry. */
  firstBad?: { seq: number; where: string; reason: string };
  /** Credit per volunteer summed from the chain. */
  credit: Map<string, number>;
}

const sealName = (s: LedgerSeal) => `seal #${s.firstSeq}–#${s.lastSeq}`;

/** Why a seal over entries with these hashes is not the coordinator's, or null when it is. */
function sealProblem(seal: LedgerSeal, hashes: string[], publicKey: KeyObject): string | null {
  if (seal.headHash !== hashes[hashes.length - 1]) return 'head hash is not the hash of its last entry';
  if (seal.root !== sealRoot(hashes)) return 'Merkle root does not match the entries it covers';
  const { signature, ...unsigned } = seal;
  if (!verifySignature(publicKey, Buffer.from(ledgerSealCanonical(unsigned)), signature)) return BAD_SIGNATURE;
  return null;
}

/**
 * Checks every entry in order (sequence, link, hash) and every seal: seals cover the entries in
 * consecutive ranges, each once, with the right head hash, Merkle root and signature. Entries with
 * a legacy per-entry signature may only come before the first seal. An entry no seal covers (an
 * unsealed tail) is a failure: the coordinator writes each seal in its entries' transaction.
 */
export function verifyChain(ledger: { entries: Iterable<LedgerEntry>; seals: Iterable<LedgerSeal> }, publicKey: KeyObject): VerifyReport {
  const credit = new Map<string, number>();
  const seals = ledger.seals[Symbol.iterator]();
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  let open: { seal: LedgerSeal; hashes: string[] } | null = null;
  let sealed = false;
  const fail = (seq: number, where: string, reason: string): VerifyReport => ({ ok: false, checked, firstBad: { seq, where, reason }, credit });
  for (const e of ledger.entries) {
    const bad = (reason: string) => fail(e.seq, `entry #${e.seq}`, reason);
    if (e.seq !== expectedSeq) return bad(`sequence number ${e.seq} where ${expectedSeq} was expected (entry missing or inserted)`);
    if (e.prevHash !== prevHash) return bad('previous-hash link does not match the entry before it');
    if (entryHash(e) !== e.hash) return bad(ALTERED);
    credit.set(e.volunteerId, (credit.get(e.volunteerId) ?? 0) + e.amount);
    prevHash = e.hash;
    expectedSeq++;
    if (e.signature !== undefined && !sealed) {
      if (!verifySignature(publicKey, Buffer.from(e.hash, 'hex'), e.signature)) return bad(BAD_SIGNATURE);
      checked++;
      continue;
    }
    if (!open) {
      const next = seals.next();
      if (next.done) return bad('no seal covers this entry (unsealed)');
      const seal = next.value;
      if (seal.firstSeq !== e.seq || seal.lastSeq < seal.firstSeq) {
        return fail(seal.firstSeq, sealName(seal), `does not start at entry #${e.seq}, the first entry after the previous seal`);
      }
      open = { seal, hashes: [] };
      sealed = true;
    }
    open.hashes.push(e.hash);
    if (e.seq === open.seal.lastSeq) {
      const problem = sealProblem(open.seal, open.hashes, publicKey);
      if (problem) return fail(open.seal.firstSeq, sealName(open.seal), problem);
      checked += open.hashes.length;
      open = null;
    }
  }
  if (open) return fail(open.seal.firstSeq, sealName(open.seal), `covers entries up to #${open.seal.lastSeq}, but the ledger ends at #${expectedSeq - 1}`);
  const extra = seals.next();
  if (!extra.done) return fail(extra.value.firstSeq, sealName(extra.value), `covers entries after the last one (#${expectedSeq - 1})`);
  return { ok: true, checked, credit };
}
