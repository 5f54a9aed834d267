// Who is connected to the worker WebSocket: connection counts per address (by `addressKey`: IPv6
// by its /64) and per identity (so one machine or one key cannot hold the coordinator's sockets),
// per-connection message budgets, and a way to close every connection of an identity when it is
// suspended.
import { AddressCounts } from '../access/address-key.js';

export interface ConnectionLimits {
  wsMaxPerAddress: number;
  wsMaxPerIdentity: number;
  wsMessagesPerSecond: number;
  wsMessageBurst: number;
}

/** A token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

type Closer = (reason: string) => void;

export class Connections {
  private readonly perAddress = new AddressCounts();
  private readonly perIdentity = new Map<string, Set<Closer>>();

  constructor(readonly limits: ConnectionLimits) {}

  /** Counts a new connection from `address`; false (and not counted) when its address key is at its cap. */
  admit(address: string): boolean {
    return this.perAddress.take(address, this.limits.wsMaxPerAddress);
  }

  /** A connection `admit` counted has closed. */
  release(address: string) {
    this.perAddress.release(address);
  }

  /** Registers an authenticated connection; false when the identity is at its cap. */
  bind(volunteerId: string, close: Closer): boolean {
    const set = this.perIdentity.get(volunteerId) ?? new Set<Closer>();
    if (set.size >= this.limits.wsMaxPerIdentity) return false;
    set.add(close);
    this.perIdentity.set(volunteerId, set);
    return true;
  }

  unbind(volunteerId: string, close: Closer) {
    const set = this.perIdentity.get(volunteerId);
    set?.delete(close);
    if (set?.size === 0) this.perIdentity.delete(volunteerId);
  }

  /** The identities with a connection now. */
  identities(): string[] {
    return [...this.perIdentity.keys()];
  }

  /** Closes every connection of the identity. */
  disconnect(volunteerId: string, reason: string) {
    for (const close of [...(this.perIdentity.get(volunteerId) ?? [])]) close(reason);
  }

  messageBudget(): TokenBucket {
    return new TokenBucket(this.limits.wsMessagesPerSecond, this.limits.wsMessageBurst);
  }
}
