// Which backend a volunteer's browser computes on: WebGPU (our WGSL kernels, ORT's WebGPU EP) or
// the CPU (WebAssembly). The first unit runs on the backend most likely to be faster from what is
// known at once (a remembered measurement, else a guess); both are then measured on a short matmul
// between units, the faster wins, and the choice is remembered per device; a different browser or
// device (the fingerprint) measures again. Pure logic, so it is unit-tested without a browser.

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

/** What the page knows at once, before measuring anything. */
export interface QuickFacts {
  /** The browser opened a WebGPU device. */
  webgpu: boolean;
  /** The adapter is a software one (SwiftShader, WARP): the spec's isFallbackAdapter. */
  isFallbackAdapter: boolean;
}

/**
 * The likelier faster backend before measuring. A software adapter runs WebGPU on the CPU, ~50–100×
 * slower than the wasm backend even on one thread (DESIGN.md: 0.34 vs 26 GFLOP/s); a hardware GPU
 * beats the wasm backend at its most threads (4, ~25 GFLOP/s each at best). So the thread count
 * does not change the guess; the measurement between units corrects it where it is wrong.
 */
export function guessBackend(f: QuickFacts): Backend {
  return f.webgpu && !f.isFallbackAdapter ? 'webgpu' : 'cpu';
}

/** Where the first unit's backend came from. */
export type FirstChoiceSource = 'remembered' | 'expired' | 'guess';

/**
 * The backend for the first units: a still-valid measurement of this device ('remembered': not
 * measured again); an expired one of the same device ('expired': its choice, measured again in the
 * background); otherwise the guess from what is known at once.
 */
export function firstChoice(stored: BackendRecord | undefined, fingerprint: string, now: number, facts: QuickFacts): { choice: Backend; source: FirstChoiceSource } {
  const same: BackendRecord | undefined = stored?.fingerprint === fingerprint ? stored : undefined; // (recordStillValid narrows `stored`)
  if (recordStillValid(stored, fingerprint, now)) return { choice: stored.choice, source: 'remembered' };
  if (same) return { choice: same.choice, source: 'expired' };
  return { choice: guessBackend(facts), source: 'guess' };
}

/**
 * The backend to use: an override wins when that backend exists here; else the measured choice.
 * WebGPU is never chosen when this browser has none.
 */
export function chooseBackend(record: { choice: Backend }, override: Backend | null, hasWebgpu: boolean): Backend {
  if (override === 'webgpu' && hasWebgpu) return 'webgpu';
  if (override === 'cpu') return 'cpu';
  return record.choice === 'webgpu' && hasWebgpu ? 'webgpu' : 'cpu';
}
