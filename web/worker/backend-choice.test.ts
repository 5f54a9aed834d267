import { describe, expect, test } from 'vitest';
import {
  backendOverride,
  chooseBackend,
  deviceFingerprint,
  fasterBackend,
  firstChoice,
  guessBackend,
  recordStillValid,
  REMEASURE_AFTER_MS,
  type BackendRecord,
} from './backend-choice';

const fp = deviceFingerprint({ userAgent: 'Chrome/156', cores: 2, adapter: 'SwiftShader', threads: 2 });
const record = (over: Partial<BackendRecord> = {}): BackendRecord => ({ fingerprint: fp, choice: 'cpu', webgpu: 0.3, cpu: 20, measuredAt: 1000, ...over });

describe('fasterBackend', () => {
  test.each([
    [{ webgpu: 0.34, cpu: 26 }, 'cpu'], // software WebGPU vs wasm (measured on a GPU-less machine)
    [{ webgpu: 900, cpu: 30 }, 'webgpu'], // a real GPU
    [{ webgpu: null, cpu: 5 }, 'cpu'], // no WebGPU at all
    [{ webgpu: 3, cpu: null }, 'webgpu'], // the CPU path failed to start
    [{ webgpu: null, cpu: null }, 'cpu'],
    [{ webgpu: 10, cpu: 10 }, 'cpu'], // a tie goes to the CPU
    [{ webgpu: 0, cpu: 0.001 }, 'cpu'],
    [{ webgpu: Number.NaN, cpu: 1 }, 'cpu'],
  ] as const)('%o -> %s', (speeds, expected) => {
    expect(fasterBackend(speeds)).toBe(expected);
  });
});

describe('backendOverride', () => {
  test.each([
    ['?backend=cpu', 'cpu'],
    ['?backend=webgpu', 'webgpu'],
    ['?x=1&backend=cpu', 'cpu'],
    ['?backend=gpu', null],
    ['?backend=CPU', null],
    ['', null],
  ] as const)('%s -> %s', (search, expected) => {
    expect(backendOverride(search)).toBe(expected);
  });
});

describe('recordStillValid: when to measure again', () => {
  test('a fresh record for this device is reused', () => {
    expect(recordStillValid(record(), fp, 2000)).toBe(true);
  });
  test('no record: measure', () => {
    expect(recordStillValid(undefined, fp, 2000)).toBe(false);
  });
  test.each([
    ['another browser version', { userAgent: 'Chrome/157', cores: 2, adapter: 'SwiftShader', threads: 2 }],
    ['another GPU', { userAgent: 'Chrome/156', cores: 2, adapter: 'NVIDIA', threads: 2 }],
    ['WebGPU gone', { userAgent: 'Chrome/156', cores: 2, adapter: null, threads: 2 }],
    ['more cores', { userAgent: 'Chrome/156', cores: 8, adapter: 'SwiftShader', threads: 2 }],
    ['no isolation now (1 thread)', { userAgent: 'Chrome/156', cores: 2, adapter: 'SwiftShader', threads: 1 }],
  ])('%s: measure again', (_what, device) => {
    expect(recordStillValid(record(), deviceFingerprint(device), 2000)).toBe(false);
  });
  test('an old record is measured again; one from the future too (clock changed)', () => {
    expect(recordStillValid(record(), fp, 1000 + REMEASURE_AFTER_MS - 1)).toBe(true);
    expect(recordStillValid(record(), fp, 1000 + REMEASURE_AFTER_MS)).toBe(false);
    expect(recordStillValid(record(), fp, 999)).toBe(false);
  });
});

describe('chooseBackend', () => {
  test.each([
    ['measured cpu', 'cpu', null, true, 'cpu'],
    ['measured webgpu', 'webgpu', null, true, 'webgpu'],
    ['forced webgpu', 'cpu', 'webgpu', true, 'webgpu'],
    ['forced cpu', 'webgpu', 'cpu', true, 'cpu'],
    ['forced webgpu without WebGPU', 'cpu', 'webgpu', false, 'cpu'],
    ['stale webgpu choice without WebGPU', 'webgpu', null, false, 'cpu'],
  ] as const)('%s', (_what, choice, override, hasWebgpu, expected) => {
    expect(chooseBackend(record({ choice }), override, hasWebgpu)).toBe(expected);
  });
});

describe('guessBackend: the first units before anything is measured', () => {
  test.each([
    ['a hardware GPU', { webgpu: true, isFallbackAdapter: false }, 'webgpu'],
    ['a software adapter (SwiftShader)', { webgpu: true, isFallbackAdapter: true }, 'cpu'],
    ['no WebGPU', { webgpu: false, isFallbackAdapter: false }, 'cpu'],
  ] as const)('%s -> %s', (_what, facts, expected) => {
    expect(guessBackend(facts)).toBe(expected);
  });
});

describe('firstChoice', () => {
  const software = { webgpu: true, isFallbackAdapter: true };
  test('a valid record is used as it is and not measured again', () => {
    expect(firstChoice(record({ choice: 'webgpu' }), fp, 2000, software)).toEqual({ choice: 'webgpu', source: 'remembered' });
  });
  test("an expired record of this device: its choice first, measured again", () => {
    expect(firstChoice(record({ choice: 'webgpu' }), fp, 1000 + REMEASURE_AFTER_MS, software)).toEqual({ choice: 'webgpu', source: 'expired' });
  });
  test("another device's record is no guide: the guess", () => {
    const other = deviceFingerprint({ userAgent: 'Chrome/157', cores: 2, adapter: 'SwiftShader', threads: 2 });
    expect(firstChoice(record({ choice: 'webgpu' }), other, 2000, software)).toEqual({ choice: 'cpu', source: 'guess' });
    expect(firstChoice(undefined, fp, 2000, { webgpu: true, isFallbackAdapter: false })).toEqual({ choice: 'webgpu', source: 'guess' });
  });
});
