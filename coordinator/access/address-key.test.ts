import { describe, expect, test } from 'vitest';
import { rng } from '../testing/helpers.js';
import { addressKey } from './address-key.js';

describe('addressKey', () => {
  test.each([
    ['203.0.113.7', '203.0.113.7'],
    // IPv4-mapped, as a dual-stack listener reports an IPv4 client, and the same written in hex.
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
    ['0:0:0:0:0:ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:aaaa::1', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:bbbb:cccc:dddd:eeee', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002::', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1%eth0', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    // NAT64 (an IPv4 host seen through a translator): the translator's /64, not the IPv4 address.
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['not an address', 'not an address'],
  ])('%s counts as %s', (address, key) => {
    expect(addressKey(address)).toBe(key);
  });

  test('every address of one /64 is one key, written any way; the next /64 and IPv4 addresses are others', () => {
    const next = rng(64);
    const hex = () => Math.floor(next() * 0x10000).toString(16);
    const keys = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const host = [hex(), hex(), hex(), hex()];
      keys.add(addressKey(`2001:db8:a:b:${host.join(':')}`));
      keys.add(addressKey(`2001:0db8:000a:000B:${host.map((h) => h.padStart(4, '0').toUpperCase()).join(':')}`));
    }
    keys.add(addressKey('2001:db8:a:b::'));
    expect([...keys]).toEqual(['2001:db8:a:b::/64']);
    expect(addressKey('2001:db8:a:c::1')).not.toBe('2001:db8:a:b::/64');
    expect(addressKey('10.0.0.1')).not.toBe(addressKey('10.0.0.2'));
  });
});
