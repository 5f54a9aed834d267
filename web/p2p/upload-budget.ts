// How much this page uploads to peers: at most `maxConcurrent` transfers at once, at most
// `bytesPerSecond` in all (a token bucket holding up to one second of bytes). A rate of 0 turns
// serving off. Pure (time is passed in), so it is unit-tested without a browser.

export interface UploadBudgetOptions {
  bytesPerSecond: number;
  maxConcurrent?: number;
}

export class UploadBudget {
  private tokens: number;
  private last: number | null = null;
  private active = 0;
  bytesPerSecond: number;
  readonly maxConcurrent: number;

  constructor(opts: UploadBudgetOptions) {
    this.bytesPerSecond = opts.bytesPerSecond;
    this.maxConcurrent = opts.maxConcurrent ?? 4;
    this.tokens = opts.bytesPerSecond;
  }

  /** Starts an upload if serving is on and a slot is free; pair with finish(). */
  tryStart(): boolean {
    if (this.bytesPerSecond <= 0 || this.active >= this.maxConcurrent) return false;
    this.active++;
    return true;
  }

  finish() {
    this.active = Math.max(0, this.active - 1);
  }

  get uploading(): number {
    return this.active;
  }

  /** Spends `bytes` and says how many milliseconds to wait before sending them to stay within the rate. */
  reserve(bytes: number, nowMs: number): number {
    const rate = this.bytesPerSecond;
    if (rate <= 0) return 0;
    if (this.last !== null) this.tokens = Math.min(rate, this.tokens + ((nowMs - this.last) * rate) / 1000);
    this.last = nowMs;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / rate) * 1000;
  }
}
