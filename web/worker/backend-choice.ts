// Which backend a volunteer's browser computes on: WebGPU (our WGSL kernels, ORT's WebGPU EP) or
// the CPU (WebAssembly). Both are measured on a short matmul at start, the faster wins, and the
// choice is remembered per device; a different browser or device (the fingerprint) measures again.
// Pure logic, so it is unit-tested without a browser.

import type { Backend, BackendRecord, Speeds } from '../store/db';

export type { Backend, BackendRecord, Speeds } from '../store/db';

/** Measurements older than this are taken again (drivers and browsers update). */
export const REMEASURE_AFTER_MS = 30 * 24 * 3600 * 1000;

/** What identifies "this browser on this device": a change means the old figures do not apply. */
export function deviceFingerprint(d: { userAgent: string; cores: number; adapter: string | null; threads: number }): string {
  return [d.userAgent, `cores=${d.cores}`, `threads=${d.threads}`, `gpu=${d.adapter ?? 'none'}`].join('|');
}

/** `?backend=cpu` or `?backend=webgpu` in the page URL forces a backend (testing, troubleshooting). */
export function backendOverride(search: string): Backend | null {
  const v = new URLSearchParams(search).get('backend');
  return v === 'cpu' || v === 'webgpu' ? v : null;
}

/** The faster backend; the CPU when WebGPU is missing, and on a tie (it needs no GPU driver). */
export function fasterBackend(s: Speeds): Backend {
  if (s.webgpu === null || !(s.webgpu > 0)) return 'cpu';
  if (s.cpu === null || !(s.cpu > 0)) return 'webgpu';
  return s.webgpu > s.cpu ? 'webgpu' : 'cpu';
}

/** Whether a stored record still describes this device: same fingerprint and recent enough. */
export function recordStillValid(stored: BackendRecord | undefined, fingerprint: string, now: number): stored is BackendRecord {
  return !!stored && stored.fingerprint === fingerprint && now - stored.measuredAt < REMEASURE_AFTER_MS && now >= stored.measuredAt;
}

/**
 * The backend to use: an override wins when that backend exists here; else the measured choice.
 * WebGPU is never chosen when this browser has none.
 */
export function chooseBackend(record: Speeds & { choice: Backend }, override: Backend | null, hasWebgpu: boolean): Backend {
  if (override === 'webgpu' && hasWebgpu) return 'webgpu';
  if (override === 'cpu') return 'cpu';
  return record.choice === 'webgpu' && hasWebgpu ? 'webgpu' : 'cpu';
}
