// Step-graph sessions by model and optimizer (a job's units share one session), a few at most, the
// oldest released first; a creation that failed is forgotten, so a later unit tries again. The CPU
// backend's (wasm EP) and the WebGPU backend's (webgpu EP) trainers each keep one such cache.
import type { Session } from './runtime';
import type { StepGraphSpec } from './train-step';

const MAX_SESSIONS = 4;

/** What tells one step graph from another: the model and the optimizer (a job's units share both). */
export const stepGraphKey = (spec: StepGraphSpec) => JSON.stringify([spec.model, spec.optimizer]);

export function stepSessionCache<T extends { session: Session }>(create: (spec: StepGraphSpec) => Promise<T>): (spec: StepGraphSpec) => Promise<T> {
  const made = new Map<string, Promise<T>>();
  return (spec) => {
    const key = stepGraphKey(spec);
    let s = made.get(key);
    if (!s) {
      s = Promise.resolve().then(() => create(spec));
      s.catch(() => made.delete(key));
      made.set(key, s);
      for (const [old, entry] of made) {
        if (made.size <= MAX_SESSIONS) break;
        made.delete(old);
        void entry.then((x) => x.session.release()).catch(() => undefined);
      }
    }
    return s;
  };
}
