import { expect, test } from 'vitest';
import { Connections } from './connections.js';

const limits = { wsMaxPerAddress: 3, wsMaxPerIdentity: 4, wsMessagesPerSecond: 200, wsMessageBurst: 400 };

test('worker sockets per address: addresses of one IPv6 /64 count as one address', () => {
  const c = new Connections(limits);
  // Before, each of the /64's 2^64 addresses had a cap of its own.
  expect(['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff:1:2:3'].map((a) => c.admit(a))).toEqual([true, true, true]);
  expect(c.admit('2001:db8:1:2:dead:beef:0:1')).toBe(false);
  // Another /64, and an IPv4 address, are not affected.
  expect(c.admit('2001:db8:1:3::1')).toBe(true);
  expect(c.admit('192.0.2.1')).toBe(true);
  // One of the /64's connections closes (from any of its addresses): one more may open.
  c.release('2001:db8:1:2::2');
  expect(c.admit('2001:db8:1:2::99')).toBe(true);
  expect(c.admit('2001:db8:1:2::100')).toBe(false);
});

test('an IPv4 address and its IPv4-mapped IPv6 form are one address; other IPv4 addresses are not', () => {
  const c = new Connections(limits);
  expect([c.admit('198.51.100.7'), c.admit('::ffff:198.51.100.7'), c.admit('::ffff:c633:6407')]).toEqual([true, true, true]);
  expect(c.admit('198.51.100.7')).toBe(false);
  expect(c.admit('198.51.100.8')).toBe(true);
  c.release('::ffff:198.51.100.7');
  expect(c.admit('198.51.100.7')).toBe(true);
});
