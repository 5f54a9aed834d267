// Researcher API tokens. Each token has a scope — `submit` (upload shards, submit and read jobs) or
// `admin` (that, plus managing tokens) — and only its sha-256 is stored (in the store's meta table),
// so a copy of the database does not leak usable secrets. The bootstrap token (TABGRID_API_TOKEN or
// data/api-token) is always an admin token; the coordinator keeps only its hash in memory.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { TokenScope, type TokenInfo } from '../protocol/index.js';
import type { Store } from '../store/store.js';

const META_KEY = 'api-tokens';

interface StoredToken extends TokenInfo {
  /** sha-256 of the secret, hex. */
  hash: string;
}

export interface Principal {
  /** Token id, or 'bootstrap' for TABGRID_API_TOKEN / data/api-token. */
  id: string;
  scope: TokenScope;
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** Does `scope` allow what `needed` requires? admin ⊇ submit. */
export function scopeAllows(scope: TokenScope, needed: TokenScope): boolean {
  return scope === 'admin' || scope === needed;
}

export class TokenRegistry {
  private readonly bootstrapHash: Buffer | null;

  /** `bootstrapToken` null: manage tokens only (the CLI), no bootstrap admin. */
  constructor(
    private readonly store: Store,
    bootstrapToken: string | null,
  ) {
    this.bootstrapHash = bootstrapToken ? hashSecret(bootstrapToken) : null;
  }

  private async load(): Promise<StoredToken[]> {
    const raw = await this.store.getMeta(META_KEY);
    if (!raw) return [];
    const parsed = JSON.parse(raw) as StoredToken[];
    return parsed.filter((t) => TokenScope.safeParse(t.scope).success && /^[0-9a-f]{64}$/.test(t.hash));
  }

  private save(tokens: StoredToken[]) {
    return this.store.setMeta(META_KEY, JSON.stringify(tokens));
  }

  /** Makes a token; the secret is returned once and never stored. */
  async create(scope: TokenScope, name: string | null, now: number): Promise<{ token: string; info: TokenInfo }> {
    const id = `tk_${randomBytes(6).toString('hex')}`;
    const token = `tg_${randomBytes(24).toString('base64url')}`;
    const info: TokenInfo = { id, scope, name, createdAt: now };
    await this.save([...(await this.load()), { ...info, hash: hashSecret(token).toString('hex') }]);
    return { token, info };
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.load()).map(({ id, scope, name, createdAt }) => ({ id, scope, name, createdAt }));
  }

  async revoke(id: string): Promise<boolean> {
    const tokens = await this.load();
    const kept = tokens.filter((t) => t.id !== id);
    if (kept.length === tokens.length) return false;
    await this.save(kept);
    return true;
  }

  /** The token's principal, or null. Compares hashes in constant time. */
  async authenticate(secret: string): Promise<Principal | null> {
    const h = hashSecret(secret);
    if (this.bootstrapHash && timingSafeEqual(h, this.bootstrapHash)) return { id: 'bootstrap', scope: 'admin' };
    for (const t of await this.load()) {
      if (timingSafeEqual(h, Buffer.from(t.hash, 'hex'))) return { id: t.id, scope: t.scope };
    }
    return null;
  }
}
