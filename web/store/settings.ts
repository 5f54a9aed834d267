// The volunteer's settings, kept in IndexedDB so they survive a reload.
import { openStore, type Settings } from './db';

export const DEFAULT_SETTINGS: Readonly<Settings> = {
  shardCacheBytes: 256 * 1024 * 1024,
  uploadBytesPerSecond: 8 * 1024 * 1024,
};

export async function loadSettings(): Promise<Settings> {
  const db = await openStore();
  const out: Settings = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
    const value = await db.get('settings', key);
    if (typeof value === 'number' && Number.isFinite(value) && value >= 0) out[key] = value;
  }
  return out;
}

export async function saveSetting(key: keyof Settings, value: number): Promise<void> {
  await (await openStore()).put('settings', value, key);
}
