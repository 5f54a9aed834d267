// BOINC-style automatic pauses: while the tab is hidden, and while the device runs on battery
// (where the browser exposes the Battery Status API). Each returns a function that stops watching.
import type { PauseReason } from './coordinator-client';

type SetPause = (reason: PauseReason, on: boolean) => void;

export function watchVisibility(setPause: SetPause): () => void {
  const check = () => setPause('hidden', document.visibilityState === 'hidden');
  check();
  document.addEventListener('visibilitychange', check);
  return () => {
    document.removeEventListener('visibilitychange', check);
    setPause('hidden', false);
  };
}

interface BatteryManager extends EventTarget {
  charging: boolean;
}

/** Whether this browser tells pages about the battery (Chromium does; Firefox and Safari do not). */
export function batteryApiAvailable(): boolean {
  return typeof (navigator as Navigator & { getBattery?: unknown }).getBattery === 'function';
}

export function watchBattery(setPause: SetPause): () => void {
  const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryManager> };
  if (!nav.getBattery) return () => undefined;
  let battery: BatteryManager | null = null;
  let stopped = false;
  const check = () => battery && setPause('battery', !battery.charging);
  void nav.getBattery().then((b) => {
    if (stopped) return;
    battery = b;
    check();
    b.addEventListener('chargingchange', check);
  });
  return () => {
    stopped = true;
    battery?.removeEventListener('chargingchange', check);
    setPause('battery', false);
  };
}
