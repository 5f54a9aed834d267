import { describe, expect, test } from 'vitest';
import { lruEvictions, type LruEntry } from './lru';

const e = (key: string, size: number, lastUsed: number): LruEntry => ({ key, size, lastUsed });

describe('lruEvictions', () => {
  test.each([
    { name: 'fits: nothing goes', entries: [e('a', 10, 1), e('b', 10, 2)], cap: 20, incoming: 0, evict: [] },
    { name: 'exactly at the cap with the newcomer', entries: [e('a', 10, 1)], cap: 20, incoming: 10, evict: [] },
    { name: 'one byte over: the oldest goes', entries: [e('a', 10, 1), e('b', 10, 2)], cap: 20, incoming: 1, evict: ['a'] },
    { name: 'order is by last use, not insertion', entries: [e('a', 10, 5), e('b', 10, 2), e('c', 10, 9)], cap: 25, incoming: 10, evict: ['b', 'a'] },
    { name: 'a big newcomer can empty the cache', entries: [e('a', 10, 1), e('b', 10, 2)], cap: 30, incoming: 30, evict: ['a', 'b'] },
    { name: 'a newcomer bigger than the cap evicts everything', entries: [e('a', 1, 1)], cap: 5, incoming: 6, evict: ['a'] },
    { name: 'empty cache', entries: [], cap: 0, incoming: 0, evict: [] },
    { name: 'cap 0 evicts all', entries: [e('a', 1, 2), e('b', 1, 1)], cap: 0, incoming: 0, evict: ['b', 'a'] },
    { name: 'stops as soon as it fits', entries: [e('a', 50, 1), e('b', 1, 2), e('c', 1, 3)], cap: 10, incoming: 0, evict: ['a'] },
  ])('$name', ({ entries, cap, incoming, evict }) => {
    expect(lruEvictions(entries, cap, incoming)).toEqual(evict);
  });

  test('kept keys are never chosen', () => {
    expect(lruEvictions([e('a', 10, 1), e('b', 10, 2)], 10, 0, new Set(['a']))).toEqual(['b']);
  });

  test('does not reorder its input', () => {
    const entries = [e('b', 1, 2), e('a', 1, 1)];
    lruEvictions(entries, 0);
    expect(entries.map((x) => x.key)).toEqual(['b', 'a']);
  });
});
