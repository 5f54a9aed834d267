import { describe, expect, test } from 'vitest';
import { UploadBudget } from './upload-budget';

describe('UploadBudget', () => {
  test('at most maxConcurrent uploads at once; finish frees a slot', () => {
    const b = new UploadBudget({ bytesPerSecond: 1000, maxConcurrent: 2 });
    expect(b.tryStart()).toBe(true);
    expect(b.tryStart()).toBe(true);
    expect(b.tryStart()).toBe(false);
    b.finish();
    expect(b.uploading).toBe(1);
    expect(b.tryStart()).toBe(true);
  });

  test('a rate of 0 turns serving off', () => {
    const b = new UploadBudget({ bytesPerSecond: 0 });
    expect(b.tryStart()).toBe(false);
  });

  test('one second of bytes goes at once, the rest at the rate', () => {
    const b = new UploadBudget({ bytesPerSecond: 1000 });
    expect(b.reserve(1000, 0)).toBe(0);
    expect(b.reserve(500, 0)).toBe(500); // 500 bytes over: half a second
    expect(b.reserve(500, 500)).toBe(500); // refilled 500, spent 500: still 500 owed
    expect(b.reserve(0, 1000)).toBe(0); // paid off
  });

  test('idle time refills at most one second of bytes', () => {
    const b = new UploadBudget({ bytesPerSecond: 1000 });
    b.reserve(1000, 0);
    expect(b.reserve(1000, 60_000)).toBe(0);
    expect(b.reserve(1000, 60_000)).toBe(1000);
  });

  test('a changed rate applies to the next reservation', () => {
    const b = new UploadBudget({ bytesPerSecond: 1000 });
    b.reserve(1000, 0);
    b.bytesPerSecond = 100;
    expect(b.reserve(100, 0)).toBe(1000);
  });
});
