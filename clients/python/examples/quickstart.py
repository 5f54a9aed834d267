"""tabgrid from Python, notebook style: upload, submit, watch progress, check against numpy.

    npm start                                   # prints the URL and the API token
    open http://localhost:8080/ in two browsers # two volunteers (each unit needs two that agree)
    TABGRID_TOKEN=tg_… python3 clients/python/examples/quickstart.py
"""

# %% Connect: URL and token from TABGRID_URL (default http://localhost:8080) and TABGRID_TOKEN.
import numpy as np

import tabgrid

grid = tabgrid.Grid()
rng = np.random.default_rng(0)

# %% A matrix product. The arrays go up as float32 .npy shards; the call returns the job at once.
a = rng.standard_normal((300, 200))
b = rng.standard_normal((200, 170))
job = grid.matmul(a, b, replication=2)
print("submitted", job.id, "-", job.progress.total, "work units")

# %% Watch it: a progress bar of work units when tqdm is installed.
job.wait(timeout=600)
c = job.result(wait=False)  # the verified product, as a numpy array
expected = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)
print(f"matmul {c.shape}: max |error| vs numpy {np.abs(c - expected).max():.2e}")
assert np.allclose(c, expected, rtol=1e-4, atol=1e-3)

# %% Attention: softmax(Q·Kᵀ/√d)·V per head, Q, K, V of shape [heads, seq, d] with d 64 or 128.
q, k, v = (rng.standard_normal((2, 128, 64)) for _ in range(3))
out = grid.attention(q, k, v, causal=True).result(timeout=600)
s = q @ k.transpose(0, 2, 1) / np.sqrt(64)
s = np.where(np.tril(np.ones((128, 128), dtype=bool)), s, -np.inf)
p = np.exp(s - s.max(-1, keepdims=True))
reference = (p / p.sum(-1, keepdims=True)) @ v
print(f"attention {out.shape}: max |error| vs numpy {np.abs(out - reference).max():.2e}")
assert np.allclose(out, reference, rtol=1e-3, atol=1e-4)

# %% Several jobs at once: results as they finish.
pairs = [(rng.standard_normal((64, 32)), rng.standard_normal((32, 16))) for _ in range(3)]
for i, c in enumerate(grid.map("matmul", pairs, ordered=True)):
    assert np.allclose(c, pairs[i][0] @ pairs[i][1], rtol=1e-4, atol=1e-3)
print("map: 3 products verified")
