// The volunteer's settings in IndexedDB, with the defaults a first visit gets.
import { openStore, type Settings } from './db';

const KEY = 'volunteer';

export const DEFAULT_SETTINGS: Settings = { throttle: 1, pauseWhenHidden: true, pauseOnBattery: false, name: null };

export async function loadSettings(): Promise<Settings> {
  const db = await openStore();
  return { ...DEFAULT_SETTINGS, ...(await db.get('settings', KEY)) };
}

export async function saveSettings(settings: Settings): Promise<void> {
  const db = await openStore();
  await db.put('settings', { ...settings }, KEY);
}
