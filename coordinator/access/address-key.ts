// The unit every per-address limit counts by (worker WebSockets, HTTP requests, TCP connections,
// failed authentications, room codes, rooms and board streams): one definition, so no limit can
// be dodged by changing the form of the address. An IPv6 host usually holds a whole /64 (SLAAC,
// privacy addresses: 2^64 of them), so IPv6 counts by its /64; an IPv4-mapped IPv6 address (what a
// dual-stack listener reports for an IPv4 client) is the IPv4 address it maps.
import { isIPv4, isIPv6 } from 'node:net';

/** An IPv4 address as itself (also when IPv4-mapped, however written), an IPv6 address as its /64 (`2001:db8:1:2::/64`). */
export function addressKey(address: string): string {
  if (isIPv4(address) || !isIPv6(address)) return address;
  const g = ipv6Groups(address.replace(/%.*$/, ''));
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6] >> 8, g[6] & 255, g[7] >> 8, g[7] & 255].join('.');
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing dotted IPv4 part as two groups). */
function ipv6Groups(address: string): number[] {
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address);
  const hex = (hi: string, lo: string) => ((Number(hi) << 8) | Number(lo)).toString(16);
  const text = v4 ? `${address.slice(0, v4.index)}${hex(v4[1], v4[2])}:${hex(v4[3], v4[4])}` : address;
  const [head, tail] = text.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':').map((x) => parseInt(x, 16)) : []);
  const h = groups(head);
  if (tail === undefined) return h;
  const t = groups(tail);
  return [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/** Open things (connections, streams) counted by address key, each key held under its own cap. */
export class AddressCounts {
  private readonly open = new Map<string, number>();

  /** Counts one more for `address`; false (and nothing counted) when its key holds `max` already. */
  take(address: string, max: number): boolean {
    const key = addressKey(address);
    const n = this.open.get(key) ?? 0;
    if (n >= max) return false;
    this.open.set(key, n + 1);
    return true;
  }

  /** One that `take` counted for `address` has ended. */
  release(address: string) {
    const key = addressKey(address);
    const left = (this.open.get(key) ?? 1) - 1;
    if (left > 0) this.open.set(key, left);
    else this.open.delete(key);
  }
}
