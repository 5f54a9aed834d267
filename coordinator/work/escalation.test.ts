// The validator's memory of escalated units: the quorum each now needs, and its bound (the oldest
// forgotten first, so what strangers can make it hold stays bounded).
import { describe, expect, test } from 'vitest';
import { Escalations, MAX_ESCALATED } from './escalation.js';

describe('escalations', () => {
  test('an escalated unit needs one more agreeing result than its quorum had, until it ends', () => {
    const e = new Escalations();
    expect(e.get('j.0')).toBeUndefined();
    expect(e.add('j.0', ['r1', 'r2'])).toEqual({ quorum: 3, backers: ['r1', 'r2'] });
    expect(e.add('j.1', ['r3'])).toEqual({ quorum: 2, backers: ['r3'] }); // a trusted host's lone result
    expect(e.get('j.0')?.quorum).toBe(3);
    expect(e.end('j.0')).toEqual({ quorum: 3, backers: ['r1', 'r2'] });
    expect(e.get('j.0')).toBeUndefined();
    expect(e.end('j.0')).toBeUndefined();
    expect(e.size).toBe(1);
  });

  test.each([1, 3])('bounded at %i: past it the oldest is forgotten; escalating a unit again makes it the newest', (max) => {
    const e = new Escalations(max);
    for (let i = 0; i < max; i++) e.add(`j.${i}`, ['r']);
    e.add('j.0', ['r', 's']); // again: newest now
    e.add('j.new', ['r']);
    expect(e.size).toBe(max);
    expect(e.get('j.new')?.quorum).toBe(2);
    if (max === 1) expect(e.get('j.0')).toBeUndefined();
    else {
      expect(e.get('j.1')).toBeUndefined(); // the oldest
      expect(e.get('j.0')?.quorum).toBe(3);
    }
  });

  test('the default bound', () => {
    const e = new Escalations();
    for (let i = 0; i <= MAX_ESCALATED; i++) e.add(`j.${i}`, ['r']);
    expect(e.size).toBe(MAX_ESCALATED);
    expect(e.get('j.0')).toBeUndefined();
    expect(e.get(`j.${MAX_ESCALATED}`)).toBeDefined();
  });
});
