// The volunteer's settings, kept in IndexedDB (one entry per setting) so they survive a reload.
// A stored value that does not fit its setting (an older or hand-edited entry) gives the default.
import { z } from 'zod';
import { openStore, type Settings } from './db';

export const DEFAULT_SETTINGS: Readonly<Settings> = {
  shardCacheBytes: 256 * 1024 * 1024,
  uploadBytesPerSecond: 8 * 1024 * 1024,
  throttle: 1,
  pauseWhenHidden: true,
  pauseOnBattery: false,
  name: null,
};

const VALID: { [K in keyof Settings]: z.ZodType<Settings[K]> } = {
  shardCacheBytes: z.number().finite().min(0),
  uploadBytesPerSecond: z.number().finite().min(0),
  throttle: z.number().min(0.05).max(1),
  pauseWhenHidden: z.boolean(),
  pauseOnBattery: z.boolean(),
  name: z.string().max(64).nullable(),
};

export async function loadSettings(): Promise<Settings> {
  const db = await openStore();
  const out: Settings = { ...DEFAULT_SETTINGS };
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof Settings)[]) {
    const parsed = VALID[key].safeParse(await db.get('settings', key));
    if (parsed.success) (out as Record<keyof Settings, unknown>)[key] = parsed.data;
  }
  return out;
}

export async function saveSetting<K extends keyof Settings>(key: K, value: Settings[K]): Promise<void> {
  await (await openStore()).put('settings', value, key);
}

/** Saves the settings that differ from `before`. */
export async function saveSettings(next: Settings, before: Settings): Promise<void> {
  for (const key of Object.keys(next) as (keyof Settings)[]) {
    if (next[key] !== before[key]) await saveSetting(key, next[key]);
  }
}
