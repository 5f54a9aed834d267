// What makes a receipt authentic, checked the same way by the CLI (node:crypto) and by the
// volunteer's browser (WebCrypto): the entry's hash covers its fields, its audit path leads to its
// seal's Merkle root, and the seal carries the coordinator's Ed25519 signature. No Node APIs here.
import { fromHex, leafInput, rootFromAuditPath, toHex, type AnySha256 } from './merkle.js';
import { ledgerEntryCanonical, ledgerSealCanonical } from './canonical.js';
import type { LedgerReceipt } from './ledger.js';

export interface ReceiptCrypto {
  sha256: AnySha256;
  /** Does `signature` (base64url) verify over `message` with the coordinator's public key? Never throws. */
  verify: (message: Uint8Array, signature: string) => boolean | Promise<boolean>;
}

const utf8 = (text: string) => new TextEncoder().encode(text);

export const ALTERED = 'contents do not match the entry hash (entry altered)';
export const BAD_SIGNATURE = "coordinator signature does not verify against the coordinator's public key";

/** Why this receipt is not authentic, or null when it is. */
export async function receiptProblem(r: LedgerReceipt, c: ReceiptCrypto): Promise<string | null> {
  const { entry, seal, path } = r;
  if (toHex(await c.sha256(utf8(ledgerEntryCanonical(entry)))) !== entry.hash) return ALTERED;
  if (!seal) {
    // A legacy entry, signed on its own before ledgers were sealed.
    if (entry.signature === undefined) return 'no seal: nothing vouches for this entry';
    return (await c.verify(fromHex(entry.hash), entry.signature)) ? null : BAD_SIGNATURE;
  }
  if (entry.seq < seal.firstSeq || entry.seq > seal.lastSeq) return `its seal covers entries #${seal.firstSeq}–#${seal.lastSeq}, not #${entry.seq}`;
  if (!path) return 'no audit path from the entry to its seal';
  if (entry.seq === seal.lastSeq && entry.hash !== seal.headHash) return "the seal's head hash is not this entry's hash";
  const leaf = await c.sha256(leafInput(fromHex(entry.hash)));
  const root = await rootFromAuditPath(entry.seq - seal.firstSeq, seal.lastSeq - seal.firstSeq + 1, leaf, path.map(fromHex), c.sha256);
  if (!root) return 'the audit path does not fit the size of its seal';
  if (toHex(root) !== seal.root) return "the audit path does not lead to the seal's Merkle root (entry not sealed)";
  if (!(await c.verify(utf8(ledgerSealCanonical(seal)), seal.signature))) return `seal signature: ${BAD_SIGNATURE}`;
  return null;
}
