// Failed authentication counted per address: an address that sends more than `failuresPerMinute`
// wrong API tokens (or teacher keys) within a minute is locked out — every authenticated request
// from it is refused with 429 and Retry-After, whatever token it sends — for `lockoutMs`, doubling
// with each lockout in a row (up to a day). Addresses count by `addressKey` (IPv6 by its /64).
// Kept in memory, bounded in size.
import { addressKey } from './address-key.js';

interface Entry {
  /** Failures in the current minute, which began at `windowStart`. */
  failures: number;
  windowStart: number;
  lockedUntil: number;
  /** Lockouts in a row: the next one lasts lockoutMs · 2^lockouts. */
  lockouts: number;
  lastFailure: number;
}

const WINDOW_MS = 60_000;
const MAX_LOCKOUT_MS = 24 * 60 * 60_000;
/** A day without failures forgets an address's lockouts. */
const FORGET_MS = 24 * 60 * 60_000;

export class AuthGuard {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly opts: { failuresPerMinute: number; lockoutMs: number; maxAddresses?: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until the address may authenticate again; 0 when it may now. */
  lockedFor(address: string): number {
    const e = this.entries.get(addressKey(address));
    return e ? Math.max(0, e.lockedUntil - this.now()) : 0;
  }

  /** Counts one failed authentication; returns how long the address is now locked out (0: not). */
  failed(address: string): number {
    const key = addressKey(address);
    const t = this.now();
    let e = this.entries.get(key);
    if (e && t - e.lastFailure > FORGET_MS && e.lockedUntil <= t) e = undefined;
    if (!e) {
      this.makeRoom();
      e = { failures: 0, windowStart: t, lockedUntil: 0, lockouts: 0, lastFailure: t };
      this.entries.set(key, e);
    }
    e.lastFailure = t;
    if (e.lockedUntil > t) return e.lockedUntil - t;
    if (t - e.windowStart >= WINDOW_MS) {
      e.windowStart = t;
      e.failures = 0;
    }
    if (++e.failures >= this.opts.failuresPerMinute) {
      e.lockedUntil = t + Math.min(MAX_LOCKOUT_MS, this.opts.lockoutMs * 2 ** e.lockouts);
      e.lockouts++;
      e.failures = 0;
      e.windowStart = e.lockedUntil;
      return e.lockedUntil - t;
    }
    return 0;
  }

  /** Addresses tracked now (for tests and the attack suite's figures). */
  get size(): number {
    return this.entries.size;
  }

  /** Drops forgotten entries, and the oldest ones when still full, so the map stays bounded. */
  private makeRoom() {
    const max = this.opts.maxAddresses ?? 100_000;
    if (this.entries.size < max) return;
    const t = this.now();
    for (const [key, e] of this.entries) {
      if (e.lockedUntil <= t && t - e.lastFailure > WINDOW_MS) this.entries.delete(key);
    }
    for (const key of this.entries.keys()) {
      if (this.entries.size < max) break;
      this.entries.delete(key);
    }
  }
}
