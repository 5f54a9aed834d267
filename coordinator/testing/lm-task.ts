// A synthetic language-modelling task with a known answer: token streams from an order-2 Markov
// chain over `vocab` symbols whose next symbol depends on the one two back (so a model must look
// back a position, through attention: the last symbol alone says nothing), with the chain's exact
// entropy rate (from its stationary distribution over pairs) and unigram entropy, in nats.
import { rng } from '../protocol/train-model.js';

export interface MarkovTask {
  vocab: number;
  /** P(next = c | a, b) at ((a·V + b)·V + c). */
  transition: Float64Array;
  /** Σ_{a,b} π(a,b) H(next | a, b): the best loss per token any model can reach. */
  entropyRate: number;
  /** H of the stationary single-symbol distribution: the best loss of a model that ignores context. */
  unigramEntropy: number;
}

/**
 * The chain: after (a, b) the symbol (a + 1) mod V comes with probability 0.5 + 0.1·(a mod 4),
 * every other symbol equally likely with the rest.
 */
export function markovTask(vocab: number): MarkovTask {
  const V = vocab;
  const transition = new Float64Array(V * V * V);
  for (let a = 0; a < V; a++) {
    for (let b = 0; b < V; b++) {
      const peak = 0.5 + 0.1 * (a % 4);
      for (let c = 0; c < V; c++) transition[(a * V + b) * V + c] = c === (a + 1) % V ? peak : (1 - peak) / (V - 1);
    }
  }
  // The stationary distribution over pairs (a, b) → (b, c), by power iteration (the chain mixes fast).
  let pi = new Float64Array(V * V).fill(1 / (V * V));
  for (let it = 0; it < 2000; it++) {
    const next = new Float64Array(V * V);
    for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) for (let c = 0; c < V; c++) next[b * V + c] += pi[a * V + b] * transition[(a * V + b) * V + c];
    pi = next;
  }
  let entropyRate = 0;
  const unigram = new Float64Array(V);
  for (let a = 0; a < V; a++) {
    for (let b = 0; b < V; b++) {
      unigram[b] += pi[a * V + b];
      for (let c = 0; c < V; c++) {
        const p = transition[(a * V + b) * V + c];
        entropyRate -= pi[a * V + b] * p * Math.log(p);
      }
    }
  }
  const unigramEntropy = -unigram.reduce((s, p) => s + (p > 0 ? p * Math.log(p) : 0), 0);
  return { vocab, transition, entropyRate, unigramEntropy };
}

/** `n` tokens of the chain from the seed (ids as float32), after a burn-in to reach stationarity. */
export function markovTokens(task: MarkovTask, n: number, seed: number): Float32Array {
  const V = task.vocab;
  const next = rng(seed);
  const out = new Float32Array(n);
  let [a, b] = [0, 0];
  for (let i = -100; i < n; i++) {
    let u = next() / 4294967296;
    let c = 0;
    const row = (a * V + b) * V;
    while (c < V - 1 && u >= task.transition[row + c]) u -= task.transition[row + c++];
    if (i >= 0) out[i] = c;
    [a, b] = [b, c];
  }
  return out;
}
