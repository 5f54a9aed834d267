// Adversaries of training units (kind "train"), as sim-worker options. Each sends a wrong Δ for every
// unit it takes (never the honest one), in one of the five ways. Some report the honest
// losses (the cheap check, which recomputes the loss of θ − Δ, catches them); the others forge the
// check loss to match their Δ, so the check passes and replication or the audit must stop them.
import type { TrainParams, WorkUnitSpec } from '../../protocol/index.js';
import { checkBatchLoss, innerSpecOf } from '../../protocol/train-loop.js';
import { honestCompute, type Compute, type SimWorkerOptions } from '../../testing/sim-worker.js';

export const TRAIN_STRATEGIES = ['sign-flip', 'random', 'zero', 'stale', 'collude'] as const;
export type TrainStrategy = (typeof TRAIN_STRATEGIES)[number];

/** 30% of the identities, each kind at least once, the colluders a pair. */
export const TRAIN_ADVERSARIES: TrainStrategy[] = ['sign-flip', 'random', 'zero', 'stale', 'collude', 'collude'];
/** Honest identities beside TRAIN_ADVERSARIES, so that adversaries are 30% of all. */
export const TRAIN_HONEST = Math.round((TRAIN_ADVERSARIES.length * 0.7) / 0.3);

/** Rewrites the check loss (the last value) to what θ_round − Δ really scores: the check then passes. */
function forgeCheckLoss(wu: WorkUnitSpec, inputs: Record<string, Float32Array>, out: Float32Array): Float32Array {
  const p = wu.params as TrainParams;
  const P = out.length - 2;
  const after = new Float32Array(P);
  for (let i = 0; i < P; i++) after[i] = inputs.params[i] - out[i];
  out[P + 1] = checkBatchLoss(innerSpecOf(p), after, inputs.x, inputs.y ?? null);
  return out;
}

/** The honest Δ scaled by `factor` (−10: sign-flipped ×10), with the check loss forged to match. */
export function scaledDelta(factor: number | (() => number)): Compute {
  return (wu, inputs) => {
    const out = honestCompute(wu, inputs) as Float32Array;
    const f = typeof factor === 'number' ? factor : factor();
    for (let i = 0; i < out.length - 2; i++) out[i] *= f;
    return forgeCheckLoss(wu, inputs, out);
  };
}

/** Δ replaced (random or zero), the honest losses kept: the check's loss of θ − Δ gives it away. */
function replacedDelta(value: () => number): Compute {
  return (wu, inputs) => {
    const out = honestCompute(wu, inputs) as Float32Array;
    for (let i = 0; i < out.length - 2; i++) out[i] = value();
    return out;
  };
}

/**
 * Stale-round: the Δ computed from the parameters of the first round it saw, on this unit's data
 * and seed, with the check loss forged to match. A unit of that first round it gives up (that Δ
 * would be the honest one).
 */
function staleRound(): Pick<SimWorkerOptions, 'compute' | 'submit'> {
  let first: { round: number; params: Float32Array } | null = null;
  const compute: Compute = (wu, inputs) => {
    const round = (wu.params as TrainParams).round;
    first ??= { round, params: inputs.params.slice() };
    if (first.round === round) return new Float32Array(0);
    return forgeCheckLoss(wu, inputs, honestCompute(wu, { ...inputs, params: first.params }) as Float32Array);
  };
  return {
    compute,
    submit: (w, { leaseId, wu }, output) => {
      if (output.length === 0) w.send(JSON.stringify({ type: 'failure', leaseId, reason: 'waiting for a later round to replay this one' }));
      else w.sendResult(leaseId, wu.id, output);
    },
  };
}

/** The options (compute and/or submit) that make a train sim worker play `strategy`. */
export function trainAdversaryOptions(strategy: TrainStrategy): Pick<SimWorkerOptions, 'compute' | 'submit'> {
  switch (strategy) {
    case 'sign-flip':
      // Alone: a factor of its own each time, so two sign-flippers never agree by accident.
      return { compute: scaledDelta(() => -10 * (1.01 + 0.01 * Math.random())) };
    case 'random':
      return { compute: replacedDelta(() => Math.random() * 0.2 - 0.1) };
    case 'zero':
      return { compute: replacedDelta(() => 0) };
    case 'stale':
      return staleRound();
    case 'collude':
      // Deterministic from the unit's inputs: both members of a pair send identical bytes.
      return { compute: scaledDelta(-10) };
  }
}
