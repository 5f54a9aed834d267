import { expect, test } from 'vitest';
import { timeOrderedId } from './ids.js';

test('ids are unique and sort in creation order, also within one millisecond', () => {
  const ids = Array.from({ length: 20_000 }, () => timeOrderedId('l_'));
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual(ids);
  expect(ids[0]).toMatch(/^l_[0-9a-z]{24}$/);
});
