// The public ledger export served to anyone (GET /api/ledger/export needs no token), built once per
// ledger state and shared: callers that arrive while a build runs wait for that build, and its
// bytes are reused until the ledger's head moves. Built per request, N concurrent callers held N
// copies of the whole ledger (entries, then their JSON); shared, the coordinator holds one document,
// plus the next while it is being built, and drops it when nobody asked for it for a while.
import { Buffer } from 'node:buffer';
import type { LedgerEntry } from '../protocol/index.js';
import { exportLedger, type LedgerSource } from './export.js';

/** What the shared export reads: the ledger, and its head to tell whether a built copy is current. */
export interface ExportSource extends LedgerSource {
  ledgerHead(): Promise<LedgerEntry | null>;
}

/** One built export: its JSON and the head it ends at. */
export interface BuiltExport {
  /** The document's JSON (LedgerExport), sent as is to every caller. */
  body: Buffer;
  /** The last entry's sequence number and hash ('' for an empty ledger). */
  head: string;
  entries: number;
}

/** How long a built copy is kept after its last use. */
export const EXPORT_KEEP_MS = 60_000;

const headOf = (entry: LedgerEntry | null | undefined) => (entry ? `${entry.seq}:${entry.hash}` : '');

export class SharedLedgerExport {
  /** Builds run so far: concurrent callers and callers of an unchanged ledger add none. */
  builds = 0;
  private building: Promise<BuiltExport> | null = null;
  private kept: BuiltExport | null = null;
  private dropTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: {
      source: ExportSource;
      coordinatorPublicKey: string;
      now: () => number;
      keepMs?: number;
      log?: (msg: string) => void;
    },
  ) {}

  /** The current export: the build under way, the kept copy if the ledger has not moved, or a new build. */
  async get(): Promise<BuiltExport> {
    if (this.building) return this.building;
    const head = headOf(await this.opts.source.ledgerHead());
    if (this.kept?.head === head) {
      this.keepFor();
      return this.kept;
    }
    // Another caller may have started a build while this one read the head.
    this.building ??= this.build().finally(() => (this.building = null));
    return this.building;
  }

  /** Forgets the kept copy (the server closes). */
  clear() {
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = null;
    this.kept = null;
  }

  private async build(): Promise<BuiltExport> {
    this.builds++;
    const doc = await exportLedger(this.opts.source, this.opts.coordinatorPublicKey, this.opts.now());
    const built: BuiltExport = { body: Buffer.from(JSON.stringify(doc)), head: headOf(doc.entries.at(-1)), entries: doc.entries.length };
    this.kept = built; // the previous copy, if any, is dropped here
    this.keepFor();
    this.opts.log?.(`ledger export built: ${built.entries} entries, ${built.body.length} bytes, shared until the ledger moves`);
    return built;
  }

  /** (Re)starts the time the kept copy stays after its last use; the timer does not hold the process open. */
  private keepFor() {
    if (this.dropTimer) clearTimeout(this.dropTimer);
    this.dropTimer = setTimeout(() => (this.kept = null), this.opts.keepMs ?? EXPORT_KEEP_MS);
    this.dropTimer.unref();
  }
}
