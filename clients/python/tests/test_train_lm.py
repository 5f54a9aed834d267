"""The transformer language model from Python (``Grid.train_lm``, ``AsyncGrid.train_lm``) and
``init=`` for both families, against the real coordinator and sim workers: the losses fall, numpy's
own forward pass over the downloaded parameters (sliced in the README's documented order) gives the
coordinator's evaluation, a job started from given parameters starts from their loss, and bad
input is a ValueError before anything is sent, or the coordinator's BadRequest."""

from __future__ import annotations

import asyncio
from typing import Dict, List, Tuple

import httpx
import numpy as np
import pytest

import tabgrid

V, T, D, H, L = 8, 16, 16, 2, 1
MODEL = dict(vocab=V, context=T, layers=L, d_model=D, heads=H)
SETTINGS = dict(local_steps=32, batch_size=8, innerOptimizer={"type": "adamw", "lr": 0.015}, unitsPerRound=2, roundGraceS=0)
#: An outer step this small leaves the parameters where they were: the round's loss is the initial one.
STILL = {"type": "nesterov", "lr": 1e-9, "momentum": 0.9}


def markov_tokens(n: int, seed: int) -> np.ndarray:
    """An order-2 Markov chain over V symbols: after (a, b), (a + 1) mod V with probability
    0.5 + 0.1·(a mod 4), every other symbol equally likely (as coordinator/testing/lm-task.ts)."""
    r = np.random.default_rng(seed)
    out = np.empty(n, np.int32)
    a = b = 0
    for i in range(n):
        peak = 0.5 + 0.1 * (a % 4)
        c = (a + 1) % V if r.random() < peak else (a + 1 + r.integers(1, V)) % V
        out[i], a, b = c, b, c
    return out


TOKENS = markov_tokens(4096, 1)
VALID = markov_tokens(1024, 2)


def tensors(flat: np.ndarray) -> Dict[str, np.ndarray]:
    """The flat parameters as named tensors, in the README's order (weights [in, out])."""
    shapes: List[Tuple[str, Tuple[int, ...]]] = [("tok", (V, D)), ("pos", (T, D))]
    for l in range(L):
        p = f"l{l}."
        shapes += [(p + "ln1.g", (D,)), (p + "ln1.b", (D,)), (p + "wq", (D, D)), (p + "bq", (D,)), (p + "wk", (D, D)),
                   (p + "wv", (D, D)), (p + "bv", (D,)), (p + "wo", (D, D)), (p + "bo", (D,)), (p + "ln2.g", (D,)),
                   (p + "ln2.b", (D,)), (p + "w1", (D, 4 * D)), (p + "b1", (4 * D,)), (p + "w2", (4 * D, D)), (p + "b2", (D,))]
    shapes += [("lnf.g", (D,)), ("lnf.b", (D,)), ("head", (D, V)), ("head.b", (V,))]
    out, at = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        out[name] = flat[at:at + size].astype(np.float64).reshape(shape)
        at += size
    assert at == flat.size, (at, flat.size)
    return out


def lm_loss(flat: np.ndarray, stream: np.ndarray) -> float:
    """Mean next-token cross-entropy (nats) on the coordinator's evaluation windows of `stream`:
    min(256, len // (T+1)) windows of T + 1 tokens spread evenly over it (README: "evaluates each
    round on up to 256 non-overlapping windows spread evenly")."""
    p = tensors(flat)
    w = T + 1
    k = min(256, stream.size // w)
    starts = [(i * (stream.size - w)) // (k - 1) for i in range(k)]
    win = np.stack([stream[s:s + w] for s in starts])
    x = p["tok"][win[:, :-1]] + p["pos"]  # [k, T, D]

    def ln(z: np.ndarray, g: str) -> np.ndarray:
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-5)
        return z * p[g + ".g"] + p[g + ".b"]

    dh = D // H
    mask = np.tril(np.ones((T, T), bool))
    for l in range(L):
        n = f"l{l}."
        h = ln(x, n + "ln1")
        q, kk, v = h @ p[n + "wq"] + p[n + "bq"], h @ p[n + "wk"], h @ p[n + "wv"] + p[n + "bv"]
        split = lambda z: z.reshape(k, T, H, dh).transpose(0, 2, 1, 3)  # noqa: E731 [k, H, T, dh]
        s = split(q) @ split(kk).transpose(0, 1, 3, 2) / np.sqrt(dh)
        s = np.where(mask, s, -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        att = (a @ split(v)).transpose(0, 2, 1, 3).reshape(k, T, D)
        x = x + att @ p[n + "wo"] + p[n + "bo"]
        u = ln(x, n + "ln2") @ p[n + "w1"] + p[n + "b1"]
        u = 0.5 * u * (1 + np.tanh(np.sqrt(2 / np.pi) * (u + 0.044715 * u**3)))
        x = x + u @ p[n + "w2"] + p[n + "b2"]
    logits = ln(x, "lnf") @ p["head"] + p["head.b"]
    logits -= logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-np.take_along_axis(log_p, win[:, 1:, None], -1).mean())


def test_train_lm_the_losses_fall_numpy_reproduces_them_and_init_is_honoured(grid):
    job = grid.train_lm(TOKENS, validation=VALID, rounds=3, name="markov", **MODEL, **SETTINGS)
    assert job.kind == "train"
    flat = job.result(timeout=120, progress=False)
    assert flat.shape == (V * D + T * D + L * (12 * D * D + 12 * D) + 2 * D + D * V + V,)
    losses = job.losses
    assert len(losses) == 3 and all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 1.9  # the chain's unigram entropy is 2.07 nats: the model uses the context
    assert lm_loss(flat, VALID) == pytest.approx(losses[-1], rel=1e-4)
    np.testing.assert_array_equal(job.result(output="l0.wq", wait=False), tensors(flat)["l0.wq"].astype(np.float32))

    # From the trained parameters, with an outer step too small to move them: the job's loss is
    # theirs (numpy's), not the seed's.
    again = grid.train_lm(TOKENS, validation=VALID, rounds=1, init=flat, outerOptimizer=STILL, **MODEL, **SETTINGS)
    (start,) = again.wait(timeout=60, progress=False).losses
    assert start == pytest.approx(lm_loss(flat, VALID), rel=1e-4)
    seeded = grid.train_lm(TOKENS, validation=VALID, rounds=1, outerOptimizer=STILL, **MODEL, **SETTINGS)
    assert seeded.wait(timeout=60, progress=False).losses[0] > start + 0.2


def test_train_init_for_an_mlp(grid):
    """An MLP from given parameters: the job's loss is numpy's loss of them."""
    r = np.random.default_rng(3)
    y = np.arange(64) % 4
    x = (r.normal(0, 3, (4, 8))[y] + r.normal(0, 0.5, (64, 8))).astype(np.float32)
    init = r.normal(0, 0.3, 8 * 16 + 16 + 16 * 4 + 4).astype(np.float32)
    job = grid.train(x, y, layers=[8, 16, 4], rounds=1, local_steps=2, batch_size=16, init=init, outerOptimizer=STILL, unitsPerRound=2, roundGraceS=0)
    (loss,) = job.wait(timeout=60, progress=False).losses
    w0, b0, w1, b1 = init[:128].reshape(8, 16), init[128:144], init[144:208].reshape(16, 4), init[208:]
    logits = np.maximum(x.astype(np.float64) @ w0 + b0, 0) @ w1 + b1
    logits -= logits.max(axis=1, keepdims=True)
    expected = -(logits[np.arange(64), y] - np.log(np.exp(logits).sum(axis=1))).mean()
    assert loss == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "tokens, extra, error, message",
    [
        (np.zeros((2, 100)), {}, ValueError, r"tokens must be a 1-D array of token ids, got shape \(2, 100\)"),
        ([0, 1, -1, 2], {}, ValueError, r"tokens: token ids must be whole numbers in \[0, 8\) \(vocab\); position 2 has -1"),
        ([0, 1.5], {}, ValueError, r"position 1 has 1.5"),
        ([0, 8], {}, ValueError, r"position 1 has 8"),
        ([0, np.nan], {}, ValueError, r"position 1 has nan"),
        (["a", "b"], {}, TypeError, r"tokens: dtype <U1 is not numeric"),
        ([0, 1], {"validation": [1, 9]}, ValueError, r"validation: token ids .* position 1 has 9"),
        ([0, 1], {"init": np.zeros((2, 3))}, ValueError, r"init must be a 1-D array, got shape \(2, 3\)"),
    ],
)
def test_train_lm_refuses_bad_input_before_sending(tokens, extra, error, message):
    sent = []

    def refuse(request):
        sent.append(request)
        raise AssertionError("nothing should be sent")

    with tabgrid.Grid("http://127.0.0.1:9", "tg_unused", transport=httpx.MockTransport(refuse)) as g:
        with pytest.raises(error, match=message):
            g.train_lm(tokens, rounds=1, **MODEL, **{**SETTINGS, **extra})
    assert sent == []


def test_train_lm_what_the_coordinator_refuses_is_a_bad_request(grid):
    with pytest.raises(tabgrid.BadRequest, match="dModel must be divisible by heads"):
        grid.train_lm(TOKENS, rounds=1, **{**MODEL, "heads": 3}, **SETTINGS)
    with pytest.raises(tabgrid.BadRequest, match=r"init: has 10 values but the model has 3816 parameters"):
        grid.train_lm(TOKENS, rounds=1, init=np.zeros(10), **MODEL, **SETTINGS)
    with pytest.raises(tabgrid.BadRequest, match=r"every slice needs at least context \+ 1 = 17 tokens"):
        grid.train_lm(TOKENS[:40], rounds=1, **MODEL, **{**SETTINGS, "unitsPerRound": 4})


def test_async_train_lm(coordinator, workers):
    async def main():
        async with tabgrid.AsyncGrid(coordinator.url, coordinator.token, poll_interval=0.1) as grid:
            job = await grid.train_lm(TOKENS, validation=VALID, rounds=2, **MODEL, **SETTINGS)
            flat = await job.result(timeout=60, progress=False)
            assert len(job.losses) == 2 and job.losses[1] < job.losses[0]
            assert lm_loss(flat, VALID) == pytest.approx(job.losses[-1], rel=1e-4)
            again = await grid.train_lm(TOKENS, validation=VALID, rounds=1, init=flat, outerOptimizer=STILL, **MODEL, **SETTINGS)
            await again.wait(timeout=60, progress=False)
            assert again.losses[0] == pytest.approx(job.losses[-1], rel=1e-4)
            with pytest.raises(ValueError, match="position 0 has 8"):
                await grid.train_lm([8], **MODEL, rounds=1, **SETTINGS)

    asyncio.run(main())
