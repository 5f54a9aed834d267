// The decoder-only transformer language model family of `train` jobs (see train-model.ts): learned
// token and position embeddings, `layers` pre-LayerNorm blocks (LN → causal multi-head attention →
// residual, LN → MLP of width 4·dModel with GELU (tanh form) → residual), a final LN and an untied
// linear head to `vocab` logits; loss = mean next-token cross-entropy (nats) over every position of
// every window. An example is a window of context + 1 tokens of the slice's token stream: the
// first `context` are the input, the last `context` the targets. The T×T attention scores are
// materialised (context ≤ 256). Pure TypeScript; sums in float64 numbers, stored in `Arr`.
import { fillUniform, mixSeed, rng, type FloatArray, type FloatArrayCtor, type ParamTensor, type TrainModel } from './train-model.js';

export interface TransformerSpec {
  vocab: number;
  context: number;
  layers: number;
  dModel: number;
  heads: number;
}

export const LN_EPS = 1e-5;
export const GELU_C = Math.sqrt(2 / Math.PI);
export const GELU_CUBIC = 0.044715;

/** The parameter tensors in flat order. Weights are [in, out] row-major (x·W), as the MLP's. */
export function transformerTensors(s: TransformerSpec): ParamTensor[] {
  const { vocab: V, context: T, dModel: D } = s;
  const out: ParamTensor[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]) => {
    const size = shape.reduce((a, b) => a * b, 1);
    out.push({ name, shape, offset, size });
    offset += size;
  };
  add('tok', [V, D]);
  add('pos', [T, D]);
  for (let l = 0; l < s.layers; l++) {
    add(`l${l}.ln1.g`, [D]);
    add(`l${l}.ln1.b`, [D]);
    for (const w of ['q', 'k', 'v', 'o']) {
      add(`l${l}.w${w}`, [D, D]);
      // No key bias: it adds q·b_k to every score of a row, which softmax ignores. Its gradient is
      // zero, so in float32 it is rounding noise, which AdamW would blow up into ±lr updates that
      // honest replicas disagree on.
      if (w !== 'k') add(`l${l}.b${w}`, [D]);
    }
    add(`l${l}.ln2.g`, [D]);
    add(`l${l}.ln2.b`, [D]);
    add(`l${l}.w1`, [D, 4 * D]);
    add(`l${l}.b1`, [4 * D]);
    add(`l${l}.w2`, [4 * D, D]);
    add(`l${l}.b2`, [D]);
  }
  add('lnf.g', [D]);
  add('lnf.b', [D]);
  add('head', [D, V]);
  add('head.b', [V]);
  return out;
}

export function transformerParamCount(s: TransformerSpec): number {
  const { vocab: V, context: T, dModel: D, layers: L } = s;
  return V * D + T * D + L * (12 * D * D + 12 * D) + 2 * D + D * V + V;
}

/**
 * Multiply-adds of one window (context positions) through the model, as computed: the projections
 * and MLP (12·D² per position and layer), the head (D·V per position), and causal attention
 * (q·k and p·v over the T(T+1)/2 visible pairs, D each, per layer). Forward is 2 FLOPs per
 * multiply-add, backward 4.
 */
export function transformerMacs(s: TransformerSpec): number {
  const { vocab: V, context: T, dModel: D, layers: L } = s;
  return T * (12 * L * D * D + D * V) + L * D * T * (T + 1);
}

/**
 * Initial parameters from the seed: LN gains 1 and every bias 0; embeddings uniform with standard
 * deviation 0.5 (distinct positions from the start: attention learns to look back sooner); weights uniform with standard deviation 1/√fan_in, the residual branches' output
 * projections (wo, w2) scaled down by √(2·layers) so the residual stream does not grow with depth.
 */
export function initTransformer(s: TransformerSpec, seed: number): Float32Array {
  const p = new Float32Array(transformerParamCount(s));
  const next = rng(mixSeed(seed, 4));
  const std = (sd: number) => sd * Math.sqrt(3); // the bound of a uniform with that deviation
  for (const t of transformerTensors(s)) {
    const name = t.name.split('.').at(-1)!;
    if (t.name === 'tok' || t.name === 'pos') fillUniform(p, t.offset, t.size, std(0.5), next);
    else if (name === 'g') p.fill(1, t.offset, t.offset + t.size);
    else if (t.shape.length === 2) {
      const residual = name === 'wo' || name === 'w2';
      fillUniform(p, t.offset, t.size, std(1 / Math.sqrt(t.shape[0]) / (residual ? Math.sqrt(2 * s.layers) : 1)), next);
    }
  }
  return p;
}

type Offsets = Record<string, number>;

function offsetsOf(s: TransformerSpec): Offsets {
  const o: Offsets = {};
  for (const t of transformerTensors(s)) o[t.name] = t.offset;
  return o;
}

// --- Building blocks on [rows, cols] row-major arrays ---

/** out[r, :] = b + inp[r, :]·W for W [din, dout] at params[w], b at params[b] (none when b is undefined). */
function linear(out: FloatArray, inp: FloatArray, rows: number, din: number, dout: number, params: FloatArray, w: number, b: number | undefined) {
  const acc = new Float64Array(dout);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < dout; o++) acc[o] = b === undefined ? 0 : params[b + o];
    for (let k = 0; k < din; k++) {
      const a = inp[r * din + k];
      const row = w + k * dout;
      for (let o = 0; o < dout; o++) acc[o] += a * params[row + o];
    }
    for (let o = 0; o < dout; o++) out[r * dout + o] = acc[o];
  }
}

/** Backward of `linear`: dW += inpᵀ·dOut, db += Σ_r dOut, and (when given) dInp = dOut·Wᵀ. */
function linearBack(dOut: FloatArray, inp: FloatArray, rows: number, din: number, dout: number, params: FloatArray, w: number, b: number | undefined, grad: FloatArray, dInp: FloatArray | null) {
  const acc = new Float64Array(dout);
  for (let k = 0; k < din; k++) {
    acc.fill(0);
    for (let r = 0; r < rows; r++) {
      const a = inp[r * din + k];
      for (let o = 0; o < dout; o++) acc[o] += a * dOut[r * dout + o];
    }
    const row = w + k * dout;
    for (let o = 0; o < dout; o++) grad[row + o] += acc[o];
  }
  if (b !== undefined) {
    acc.fill(0);
    for (let r = 0; r < rows; r++) for (let o = 0; o < dout; o++) acc[o] += dOut[r * dout + o];
    for (let o = 0; o < dout; o++) grad[b + o] += acc[o];
  }
  if (!dInp) return;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < din; k++) {
      const row = w + k * dout;
      let s = 0;
      for (let o = 0; o < dout; o++) s += dOut[r * dout + o] * params[row + o];
      dInp[r * din + k] = s;
    }
  }
}

/** LayerNorm over each row; keeps x̂ and 1/σ for the backward pass. */
function layerNorm(out: FloatArray, xhat: FloatArray, rstd: FloatArray, x: FloatArray, rows: number, D: number, params: FloatArray, g: number, b: number) {
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[r * D + i];
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[r * D + i] - mean) ** 2;
    const rs = 1 / Math.sqrt(v / D + LN_EPS);
    rstd[r] = rs;
    for (let i = 0; i < D; i++) {
      const h = (x[r * D + i] - mean) * rs;
      xhat[r * D + i] = h;
      out[r * D + i] = h * params[g + i] + params[b + i];
    }
  }
}

/** Backward of `layerNorm`: dg, db accumulate into grad; dx is added to `dx` (a residual stream's gradient). */
function layerNormBack(dy: FloatArray, xhat: FloatArray, rstd: FloatArray, rows: number, D: number, params: FloatArray, g: number, b: number, grad: FloatArray, dx: FloatArray) {
  for (let r = 0; r < rows; r++) {
    let m1 = 0;
    let m2 = 0;
    for (let i = 0; i < D; i++) {
      const d = dy[r * D + i];
      const dh = d * params[g + i];
      grad[g + i] += d * xhat[r * D + i];
      grad[b + i] += d;
      m1 += dh;
      m2 += dh * xhat[r * D + i];
    }
    m1 /= D;
    m2 /= D;
    for (let i = 0; i < D; i++) dx[r * D + i] += rstd[r] * (dy[r * D + i] * params[g + i] - m1 - xhat[r * D + i] * m2);
  }
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(GELU_C * (x + GELU_CUBIC * x * x * x)));
}

function geluGrad(x: number): number {
  const t = Math.tanh(GELU_C * (x + GELU_CUBIC * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * GELU_CUBIC * x * x);
}

// --- One window forward (with what backward needs) and backward ---

interface LayerCache {
  xin: FloatArray;
  h1: FloatArray;
  xhat1: FloatArray;
  rstd1: FloatArray;
  q: FloatArray;
  k: FloatArray;
  v: FloatArray;
  /** Attention weights per head, [heads, T, T], zero above the diagonal. */
  p: FloatArray;
  att: FloatArray;
  xmid: FloatArray;
  h2: FloatArray;
  xhat2: FloatArray;
  rstd2: FloatArray;
  a1: FloatArray;
  g1: FloatArray;
}

interface WindowCache {
  layers: LayerCache[];
  xL: FloatArray;
  xf: FloatArray;
  xhatf: FloatArray;
  rstdf: FloatArray;
  logits: FloatArray;
}

/** The forward pass of one window of `context` input tokens (ids as floats at tokens[at…]). */
function forward(Arr: FloatArrayCtor, s: TransformerSpec, o: Offsets, params: FloatArray, tokens: FloatArray, at: number): WindowCache {
  const { context: T, dModel: D, heads: H, vocab: V } = s;
  const dh = D / H;
  const scale = 1 / Math.sqrt(dh);
  let x = new Arr(T * D);
  for (let t = 0; t < T; t++) {
    const id = tokens[at + t];
    for (let i = 0; i < D; i++) x[t * D + i] = params[o.tok + id * D + i] + params[o.pos + t * D + i];
  }
  const layers: LayerCache[] = [];
  const row = new Float64Array(T);
  for (let l = 0; l < s.layers; l++) {
    const n = `l${l}.`;
    const c: LayerCache = {
      xin: x,
      h1: new Arr(T * D),
      xhat1: new Arr(T * D),
      rstd1: new Arr(T),
      q: new Arr(T * D),
      k: new Arr(T * D),
      v: new Arr(T * D),
      p: new Arr(H * T * T),
      att: new Arr(T * D),
      xmid: new Arr(T * D),
      h2: new Arr(T * D),
      xhat2: new Arr(T * D),
      rstd2: new Arr(T),
      a1: new Arr(T * 4 * D),
      g1: new Arr(T * 4 * D),
    };
    layerNorm(c.h1, c.xhat1, c.rstd1, x, T, D, params, o[n + 'ln1.g'], o[n + 'ln1.b']);
    linear(c.q, c.h1, T, D, D, params, o[n + 'wq'], o[n + 'bq']);
    linear(c.k, c.h1, T, D, D, params, o[n + 'wk'], undefined);
    linear(c.v, c.h1, T, D, D, params, o[n + 'wv'], o[n + 'bv']);
    for (let h = 0; h < H; h++) {
      const hd = h * dh;
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let e = 0; e < dh; e++) dot += c.q[i * D + hd + e] * c.k[j * D + hd + e];
          row[j] = dot * scale;
          max = Math.max(max, row[j]);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          row[j] = Math.exp(row[j] - max);
          sum += row[j];
        }
        const pRow = (h * T + i) * T;
        for (let j = 0; j <= i; j++) c.p[pRow + j] = row[j] / sum;
        for (let e = 0; e < dh; e++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += c.p[pRow + j] * c.v[j * D + hd + e];
          c.att[i * D + hd + e] = acc;
        }
      }
    }
    linear(c.xmid, c.att, T, D, D, params, o[n + 'wo'], o[n + 'bo']);
    for (let i = 0; i < T * D; i++) c.xmid[i] += x[i];
    layerNorm(c.h2, c.xhat2, c.rstd2, c.xmid, T, D, params, o[n + 'ln2.g'], o[n + 'ln2.b']);
    linear(c.a1, c.h2, T, D, 4 * D, params, o[n + 'w1'], o[n + 'b1']);
    for (let i = 0; i < T * 4 * D; i++) c.g1[i] = gelu(c.a1[i]);
    const xout = new Arr(T * D);
    linear(xout, c.g1, T, 4 * D, D, params, o[n + 'w2'], o[n + 'b2']);
    for (let i = 0; i < T * D; i++) xout[i] += c.xmid[i];
    layers.push(c);
    x = xout;
  }
  const xf = new Arr(T * D);
  const xhatf = new Arr(T * D);
  const rstdf = new Arr(T);
  layerNorm(xf, xhatf, rstdf, x, T, D, params, o['lnf.g'], o['lnf.b']);
  const logits = new Arr(T * V);
  linear(logits, xf, T, D, V, params, o.head, o['head.b']);
  return { layers, xL: x, xf, xhatf, rstdf, logits };
}

/** Backward of one window from dlogits [T, V]: adds the window's gradient into `grad`. */
function backward(Arr: FloatArrayCtor, s: TransformerSpec, o: Offsets, params: FloatArray, tokens: FloatArray, at: number, c: WindowCache, dlogits: FloatArray, grad: FloatArray) {
  const { context: T, dModel: D, heads: H, vocab: V } = s;
  const dh = D / H;
  const scale = 1 / Math.sqrt(dh);
  const dxf = new Arr(T * D);
  linearBack(dlogits, c.xf, T, D, V, params, o.head, o['head.b'], grad, dxf);
  // dx: the gradient at the residual stream, carried down through the blocks.
  let dx = new Arr(T * D);
  layerNormBack(dxf, c.xhatf, c.rstdf, T, D, params, o['lnf.g'], o['lnf.b'], grad, dx);
  const dp = new Float64Array(T);
  for (let l = s.layers - 1; l >= 0; l--) {
    const n = `l${l}.`;
    const L = c.layers[l];
    // x_out = xmid + MLP(LN2(xmid))
    const dg1 = new Arr(T * 4 * D);
    linearBack(dx, L.g1, T, 4 * D, D, params, o[n + 'w2'], o[n + 'b2'], grad, dg1);
    for (let i = 0; i < T * 4 * D; i++) dg1[i] = dg1[i] * geluGrad(L.a1[i]);
    const dh2 = new Arr(T * D);
    linearBack(dg1, L.h2, T, D, 4 * D, params, o[n + 'w1'], o[n + 'b1'], grad, dh2);
    const dxmid = Arr.from(dx);
    layerNormBack(dh2, L.xhat2, L.rstd2, T, D, params, o[n + 'ln2.g'], o[n + 'ln2.b'], grad, dxmid);
    // xmid = xin + Attn(LN1(xin)) · Wo + bo
    const datt = new Arr(T * D);
    linearBack(dxmid, L.att, T, D, D, params, o[n + 'wo'], o[n + 'bo'], grad, datt);
    const dq = new Arr(T * D);
    const dk = new Arr(T * D);
    const dv = new Arr(T * D);
    for (let h = 0; h < H; h++) {
      const hd = h * dh;
      for (let i = 0; i < T; i++) {
        const pRow = (h * T + i) * T;
        // dp_ij = dO_i · v_j; dv_j += p_ij dO_i; ds_ij = p_ij (dp_ij − Σ_j' p_ij' dp_ij')
        let dot = 0;
        for (let j = 0; j <= i; j++) {
          let s2 = 0;
          for (let e = 0; e < dh; e++) s2 += datt[i * D + hd + e] * L.v[j * D + hd + e];
          dp[j] = s2;
          dot += L.p[pRow + j] * s2;
        }
        for (let j = 0; j <= i; j++) {
          const pij = L.p[pRow + j];
          const ds = pij * (dp[j] - dot) * scale;
          for (let e = 0; e < dh; e++) {
            dv[j * D + hd + e] += pij * datt[i * D + hd + e];
            dq[i * D + hd + e] += ds * L.k[j * D + hd + e];
            dk[j * D + hd + e] += ds * L.q[i * D + hd + e];
          }
        }
      }
    }
    const dh1 = new Arr(T * D);
    const tmp = new Arr(T * D);
    linearBack(dq, L.h1, T, D, D, params, o[n + 'wq'], o[n + 'bq'], grad, tmp);
    for (let i = 0; i < T * D; i++) dh1[i] += tmp[i];
    linearBack(dk, L.h1, T, D, D, params, o[n + 'wk'], undefined, grad, tmp);
    for (let i = 0; i < T * D; i++) dh1[i] += tmp[i];
    linearBack(dv, L.h1, T, D, D, params, o[n + 'wv'], o[n + 'bv'], grad, tmp);
    for (let i = 0; i < T * D; i++) dh1[i] += tmp[i];
    const dxin = Arr.from(dxmid);
    layerNormBack(dh1, L.xhat1, L.rstd1, T, D, params, o[n + 'ln1.g'], o[n + 'ln1.b'], grad, dxin);
    dx = dxin;
  }
  for (let t = 0; t < T; t++) {
    const id = tokens[at + t];
    for (let i = 0; i < D; i++) {
      grad[o.tok + id * D + i] += dx[t * D + i];
      grad[o.pos + t * D + i] += dx[t * D + i];
    }
  }
}

/**
 * Mean next-token cross-entropy (nats) over the `context` positions of each window starting at the
 * offsets in `windows`, and its gradient into `grad` when given.
 */
export function transformerLossGrad(Arr: FloatArrayCtor, s: TransformerSpec, params: FloatArray, tokens: FloatArray, windows: Int32Array, grad: FloatArray | null): number {
  const { context: T, vocab: V } = s;
  const o = offsetsOf(s);
  const n = windows.length * T;
  if (grad) grad.fill(0);
  let loss = 0;
  for (const at of windows) {
    const c = forward(Arr, s, o, params, tokens, at);
    const dlogits = grad ? new Arr(T * V) : null;
    for (let t = 0; t < T; t++) {
      let max = -Infinity;
      for (let v = 0; v < V; v++) max = Math.max(max, c.logits[t * V + v]);
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(c.logits[t * V + v] - max);
      const target = tokens[at + t + 1];
      loss += Math.log(sum) + max - c.logits[t * V + target];
      if (dlogits) for (let v = 0; v < V; v++) dlogits[t * V + v] = (Math.exp(c.logits[t * V + v] - max) / sum - (v === target ? 1 : 0)) / n;
    }
    if (grad && dlogits) backward(Arr, s, o, params, tokens, at, c, dlogits, grad);
  }
  return loss / n;
}

/** Logits [windows, context, vocab] of the windows starting at `windows` (what model.onnx computes). */
export function transformerLogits(s: TransformerSpec, params: Float32Array, tokens: FloatArray, windows: Int32Array): Float32Array {
  const o = offsetsOf(s);
  const per = s.context * s.vocab;
  const out = new Float32Array(windows.length * per);
  windows.forEach((at, w) => out.set(forward(Float32Array, s, o, params, tokens, at).logits, w * per));
  return out;
}

/** The transformer as a training family: an example is the window of context + 1 tokens at an offset of the slice. */
export function transformerModel(s: TransformerSpec): TrainModel {
  return {
    family: 'transformer',
    paramCount: transformerParamCount(s),
    tensors: transformerTensors(s),
    init: (seed) => initTransformer(s, seed),
    examples: (rows) => rows - s.context,
    lossGrad: (Arr, params, d, batch, grad) => transformerLossGrad(Arr, s, params, d.x, batch, grad),
    stepFlops: (batch) => 6 * transformerMacs(s) * batch,
  };
}
