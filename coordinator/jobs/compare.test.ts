import { describe, expect, test } from 'vitest';
import type { Tolerance } from '../protocol/index.js';
import { randomMatrix } from '../testing/helpers.js';
import { compareWithin, DEFAULT_TOLERANCE, findQuorum, type Replica } from './compare.js';

const f = (...v: number[]) => Float32Array.from(v);

/** The next float32 above x (x > 0). */
function nextUp(x: number): number {
  const b = new Float32Array([x]);
  const u = new Uint32Array(b.buffer);
  u[0] += 1;
  return b[0];
}

/** compareWithin in both argument orders; they must give the same verdict. */
function agree(x: Float32Array, y: Float32Array, tol: Tolerance): boolean {
  const xy = compareWithin(x, y, tol).ok;
  const yx = compareWithin(y, x, tol).ok;
  expect(yx).toBe(xy);
  return xy;
}

describe('compareWithin', () => {
  test('equal arrays agree, including empty ones and with a zero tolerance', () => {
    const x = randomMatrix(10, 10, 1);
    expect(compareWithin(x, x.slice(), DEFAULT_TOLERANCE)).toEqual({ ok: true });
    expect(compareWithin(x, x.slice(), { atol: 0, rtol: 0 })).toEqual({ ok: true });
    expect(compareWithin(f(), f(), { atol: 0, rtol: 0 })).toEqual({ ok: true });
  });

  // All values are exact in float32 and every operation below is exact in float64, so these
  // probe the boundary |x - y| = atol + rtol·max(|x|, |y|) itself.
  test.each([
    // atol only: 1 vs 1.5 with atol 0.5
    { name: 'atol only', tol: { atol: 0.5, rtol: 0 }, x: 1, y: 1.5 },
    // rtol only: |1 - 2| = 1 = 0.5·2
    { name: 'rtol only', tol: { atol: 0, rtol: 0.5 }, x: 1, y: 2 },
    // both: |1 - 2.5| = 1.5 = 0.25 + 0.5·2.5
    { name: 'atol + rtol', tol: { atol: 0.25, rtol: 0.5 }, x: 1, y: 2.5 },
    // negative values: |-1 - (-2.5)| = 1.5 = 0.25 + 0.5·|-2.5|
    { name: 'negative values', tol: { atol: 0.25, rtol: 0.5 }, x: -1, y: -2.5 },
    // opposite signs: |(-1) - 3| = 4 = 2.5 + 0.5·3
    { name: 'opposite signs', tol: { atol: 2.5, rtol: 0.5 }, x: -1, y: 3 },
  ])('boundary ($name): exactly at the bound agrees, one ulp beyond does not', ({ tol, x, y }) => {
    expect(Math.abs(x - y)).toBe(tol.atol + tol.rtol * Math.max(Math.abs(x), Math.abs(y)));
    expect(agree(f(0, x, 5), f(0, y, 5), tol)).toBe(true);
    const beyond = y > 0 ? nextUp(y) : -nextUp(-y);
    expect(Math.abs(x - beyond)).toBeGreaterThan(tol.atol + tol.rtol * Math.max(Math.abs(x), Math.abs(beyond)));
    expect(agree(f(0, x, 5), f(0, beyond, 5), tol)).toBe(false);
    expect(compareWithin(f(0, x, 5), f(0, beyond, 5), tol)).toEqual({ ok: false, index: 1, x, y: beyond });
  });

  test('reports the first disagreeing element', () => {
    expect(compareWithin(f(1, 2, 3, 4), f(1, 2.5, 3, 9), { atol: 0.1, rtol: 0 })).toEqual({ ok: false, index: 1, x: 2, y: 2.5 });
  });

  test('NaN agrees with NaN (any payload), not with a number', () => {
    const otherNaN = new Float32Array(1);
    new Uint32Array(otherNaN.buffer)[0] = 0x7fc00001; // a NaN with a different payload
    expect(agree(f(NaN, 1), f(NaN, 1), DEFAULT_TOLERANCE)).toBe(true);
    expect(agree(f(NaN), otherNaN, DEFAULT_TOLERANCE)).toBe(true);
    expect(agree(f(NaN), f(1), DEFAULT_TOLERANCE)).toBe(false);
    expect(agree(f(NaN), f(0), { atol: 1e6, rtol: 1 })).toBe(false);
    expect(agree(f(NaN), f(Infinity), { atol: 1e6, rtol: 1 })).toBe(false);
  });

  test('+Inf agrees with +Inf and -Inf with -Inf', () => {
    expect(agree(f(Infinity), f(Infinity), DEFAULT_TOLERANCE)).toBe(true);
    expect(agree(f(-Infinity), f(-Infinity), { atol: 0, rtol: 0 })).toBe(true);
  });

  test.each([
    { name: 'default', tol: DEFAULT_TOLERANCE },
    { name: 'zero', tol: { atol: 0, rtol: 0 } },
    { name: 'widest allowed', tol: { atol: 1e6, rtol: 1 } },
  ])('an infinity agrees with nothing but the same infinity ($name tolerance)', ({ tol }) => {
    expect(agree(f(Infinity), f(-Infinity), tol)).toBe(false);
    expect(agree(f(Infinity), f(3.4e38), tol)).toBe(false);
    expect(agree(f(-Infinity), f(0), tol)).toBe(false);
    expect(agree(f(Infinity), f(1), tol)).toBe(false);
  });

  test('length mismatch fails', () => {
    expect(compareWithin(f(1, 2, 3), f(1, 2), DEFAULT_TOLERANCE)).toMatchObject({ ok: false, index: -1 });
    expect(compareWithin(f(), f(0), DEFAULT_TOLERANCE).ok).toBe(false);
    expect(agree(f(1, 2), f(1, 2, 3), { atol: 1e6, rtol: 1 })).toBe(false);
  });

  test('symmetric on random data around the tolerance', () => {
    const x = randomMatrix(1, 2000, 3, -10, 10);
    const noise = randomMatrix(1, 2000, 4, -2e-3, 2e-3);
    const tol = { atol: 1e-4, rtol: 1e-4 };
    let agreed = 0;
    for (let i = 0; i < x.length; i++) {
      const y = f(x[i] + noise[i]);
      if (agree(f(x[i]), y, tol)) agreed++;
    }
    // The noise straddles the bound, so both verdicts occur.
    expect(agreed).toBeGreaterThan(100);
    expect(agreed).toBeLessThan(1900);
  });
});

describe('findQuorum', () => {
  const tol = DEFAULT_TOLERANCE;
  const honest = randomMatrix(8, 8, 10);
  const honestNoisy = honest.map((v) => v * (1 + 1e-6)); // another honest device's rounding
  const wrong = honest.map((v) => v + 0.5);
  const rep = (id: string, values: Float32Array): Replica => ({ id, values });

  test('2 honest + 1 wrong with quorum 2 returns the honest two', () => {
    expect(findQuorum([rep('h1', honest), rep('bad', wrong), rep('h2', honestNoisy)], 2, tol)).toEqual(['h1', 'h2']);
    expect(findQuorum([rep('bad', wrong), rep('h1', honest), rep('h2', honestNoisy)], 2, tol)).toEqual(['h1', 'h2']);
  });

  test('1 honest + 1 wrong has no quorum of 2', () => {
    expect(findQuorum([rep('h1', honest), rep('bad', wrong)], 2, tol)).toBeNull();
    expect(findQuorum([rep('bad', wrong), rep('h1', honest)], 2, tol)).toBeNull();
  });

  test('quorum 1 takes the first replica; no replicas, no quorum', () => {
    expect(findQuorum([rep('a', honest)], 1, tol)).toEqual(['a']);
    expect(findQuorum([], 1, tol)).toBeNull();
    expect(findQuorum([rep('a', honest), rep('b', honestNoisy)], 3, tol)).toBeNull();
  });

  test('two colluders with the same wrong result outvote one honest replica', () => {
    // Quorum alone cannot stop colluding identities; the job kind's cheap independent check
    // (Freivalds for matmul, run on every result before it may join a quorum) is what does.
    const c1 = wrong.slice();
    const c2 = wrong.slice();
    expect(findQuorum([rep('h', honest), rep('c1', c1), rep('c2', c2)], 2, tol)).toEqual(['c1', 'c2']);
  });

  // Every arrival order of 3 replicas where exactly one group of 2 agrees.
  const perms = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  test.each(perms)('order %i,%i,%i: the one qualifying group is found whatever the arrival order', (...order) => {
    const all = [rep('h1', honest), rep('h2', honestNoisy), rep('bad', wrong)];
    const replicas = order.map((i) => all[i]);
    const group = findQuorum(replicas, 2, tol);
    expect(group).not.toBeNull();
    expect([...group!].sort()).toEqual(['h1', 'h2']);
    // Members are listed in arrival order.
    expect(group).toEqual(replicas.filter((r) => r.id !== 'bad').map((r) => r.id));
  });

  test('a NaN-poisoned replica never joins an honest group', () => {
    const poisoned = honest.slice();
    poisoned[5] = NaN;
    expect(findQuorum([rep('p', poisoned), rep('h1', honest)], 2, tol)).toBeNull();
    expect(findQuorum([rep('p', poisoned), rep('h1', honest), rep('h2', honestNoisy)], 2, tol)).toEqual(['h1', 'h2']);
  });
});
