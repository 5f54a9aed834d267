// Row ids that sort by creation time (like UUIDv7, without its per-id random draw): new leases and
// results append to their id indexes instead of dirtying a random index page each.
import { randomBytes } from 'node:crypto';

/** Tells coordinators sharing one database apart, so their ids never collide. */
const origin = randomBytes(5).toString('hex');
let lastMs = 0;
let seq = 0;

/** `prefix` + milliseconds (base 36) + a counter within the millisecond + this process's origin. */
export function timeOrderedId(prefix: string): string {
  const now = Date.now();
  if (now > lastMs) {
    lastMs = now;
    seq = 0;
  } else seq++; // same millisecond (or the clock stepped back): keep counting, stay unique
  return `${prefix}${lastMs.toString(36).padStart(9, '0')}${seq.toString(36).padStart(5, '0')}${origin}`;
}
