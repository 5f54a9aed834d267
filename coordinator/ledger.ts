// The credit ledger: append-only entries, each hash-chained to the one before and signed with the
// coordinator's Ed25519 key, so anyone holding the public key can check nothing was altered.
import { createHash, sign, verify, type KeyObject } from 'node:crypto';
import { ledgerEntryCanonical, type LedgerEntry } from './protocol.js';

export const GENESIS_HASH = '0'.repeat(64);

type Unsigned = Omit<LedgerEntry, 'hash' | 'signature'>;

/** The hash covers every field but itself and the signature, in a fixed order. */
export function entryHash(e: Unsigned): string {
  return createHash('sha256').update(ledgerEntryCanonical(e)).digest('hex');
}

export function makeEntry(fields: Unsigned, privateKey: KeyObject): LedgerEntry {
  const hash = entryHash(fields);
  const signature = sign(null, Buffer.from(hash, 'hex'), privateKey).toString('base64url');
  return { ...fields, hash, signature };
}

export interface VerifyReport {
  ok: boolean;
  checked: number;
  /** The first entry that fails, and why. */
  firstBad?: { seq: number; reason: string };
  /** Credit per volunteer summed from the chain. */
  credit: Map<string, number>;
}

/** Checks sequence, hash, link and signature of every entry, in order. */
export function verifyChain(entries: Iterable<LedgerEntry>, publicKey: KeyObject): VerifyReport {
  const credit = new Map<string, number>();
  let prevHash = GENESIS_HASH;
  let expectedSeq = 1;
  let checked = 0;
  for (const e of entries) {
    const bad = (reason: string): VerifyReport => ({ ok: false, checked, firstBad: { seq: e.seq, reason }, credit });
    if (e.seq !== expectedSeq) return bad(`sequence number ${e.seq} where ${expectedSeq} was expected (entry missing or inserted)`);
    if (e.prevHash !== prevHash) return bad('previous-hash link does not match the entry before it');
    if (entryHash(e) !== e.hash) return bad('contents do not match the entry hash (entry altered)');
    let sigOk = false;
    try {
      sigOk = verify(null, Buffer.from(e.hash, 'hex'), publicKey, Buffer.from(e.signature, 'base64url'));
    } catch {
      sigOk = false;
    }
    if (!sigOk) return bad("coordinator signature does not verify against the coordinator's public key");
    credit.set(e.volunteerId, (credit.get(e.volunteerId) ?? 0) + e.amount);
    prevHash = e.hash;
    expectedSeq++;
    checked++;
  }
  return { ok: true, checked, credit };
}
