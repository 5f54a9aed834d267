"""Every job kind round-trips through a real coordinator and real workers and matches numpy
(matmul, attention) or onnxruntime-node (onnx); map, shard de-duplication, progress, and a job that
outlives the client that submitted it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import tabgrid

SRC = str(Path(__file__).resolve().parents[1] / "src")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def matmul_ref(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)


def attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    """softmax(Q·Kᵀ/√d)·V per head, in float64 from the float32 inputs the grid sees."""
    q, k, v = (x.astype(np.float32).astype(np.float64) for x in (q, k, v))
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    if causal:
        seq = q.shape[1]
        scores = np.where(np.tril(np.ones((seq, seq), dtype=bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ v


def test_matmul_matches_numpy(grid):
    a, b = rng(1).standard_normal((70, 50)), rng(2).standard_normal((50, 40))
    job = grid.matmul(a, b, replication=2, tile=(32, 16), name="py matmul")
    assert job.id.startswith("j_") and job.kind == "matmul"
    c = job.result(timeout=30)
    assert c.shape == (70, 40) and c.dtype == np.float32
    np.testing.assert_allclose(c, matmul_ref(a, b), rtol=1e-5, atol=1e-4)
    assert job.state == "done"
    assert job.progress == (9, 9) and job.progress.fraction == 1.0  # 3 × 3 tiles
    assert job.status()["replication"] == 2


@pytest.mark.parametrize("causal", [True, False])
def test_attention_matches_numpy(grid, causal):
    q, k, v = (rng(10 + i).standard_normal((2, 40, 64)) for i in range(3))
    job = grid.attention(q, k, v, causal=causal, block_rows=16)
    out = job.result(timeout=30)
    assert out.shape == (2, 40, 64)
    assert job.progress.total == 6  # 2 heads × 3 blocks of rows
    np.testing.assert_allclose(out, attention_ref(q, k, v, causal), rtol=1e-4, atol=1e-5)


def test_onnx_matches_onnxruntime(grid, node_side, coordinator):
    d: Path = node_side.dir
    node_side("model", "convnet", str(d / "convnet.onnx"))
    x = rng(3).standard_normal((37, 1, 8, 8)).astype(np.float32)
    np.save(d / "image.npy", x)
    (d / "ref").mkdir()
    node_side("reference", str(d / "convnet.onnx"), str(d / "ref"), f"image={d / 'image.npy'}")
    expected = {name: np.load(d / "ref" / f"{name}.npy") for name in ("logits", "features")}

    job = grid.onnx(str(d / "convnet.onnx"), {"image": x}, items_per_unit=10)  # the model as a path
    assert job.outputs == ["logits", "features"]
    out = job.result(timeout=30)
    assert set(out) == {"logits", "features"}
    assert job.progress.total == 4
    for name, want in expected.items():
        assert out[name].shape == want.shape
        np.testing.assert_allclose(out[name], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(job.result(output="features"), expected["features"], rtol=1e-5, atol=1e-6)

    # Re-attached by a new client: the job status names the outputs.
    with tabgrid.Grid(coordinator.url, coordinator.token) as again:
        both = again.job(job.id).result()
        assert set(both) == {"logits", "features"}
        np.testing.assert_array_equal(both["features"], out["features"])
        np.testing.assert_array_equal(again.job(job.id).result(output="logits"), out["logits"])
        assert again.job(job.id, outputs=["logits"]).result().keys() == {"logits"}

    # The model as bytes, one bare array for its one input, argmax agreement on the logits.
    node_side("model", "mlp", str(d / "mlp.onnx"))
    xm = rng(4).standard_normal((50, 16)).astype(np.float32)
    np.save(d / "x.npy", xm)
    (d / "ref-mlp").mkdir()
    node_side("reference", str(d / "mlp.onnx"), str(d / "ref-mlp"), f"x={d / 'x.npy'}")
    job = grid.onnx((d / "mlp.onnx").read_bytes(), xm, items_per_unit=16, argmax="logits")
    logits = job.result(timeout=30)["logits"]
    np.testing.assert_allclose(logits, np.load(d / "ref-mlp" / "logits.npy"), rtol=1e-5, atol=1e-6)


def test_onnx_model_proto(grid, node_side):
    onnx = pytest.importorskip("onnx")
    d: Path = node_side.dir
    path = d / "mlp-proto.onnx"
    node_side("model", "mlp", str(path))
    x = rng(5).standard_normal((20, 16)).astype(np.float32)
    by_proto = grid.onnx(onnx.load(str(path)), {"x": x}).result(timeout=30)
    by_path = grid.onnx(str(path), {"x": x}).result(timeout=30)
    np.testing.assert_array_equal(by_proto["logits"], by_path["logits"])


def test_map_yields_results_as_jobs_finish(grid, node_side):
    # Distinct shapes, so each result tells which batch it is.
    pairs = [(rng(20 + i).standard_normal((8 + i, 12)), rng(40 + i).standard_normal((12, 5))) for i in range(5)]
    results = list(grid.map("matmul", pairs, replication=1, max_in_flight=3))
    assert sorted(r.shape[0] for r in results) == [8, 9, 10, 11, 12]
    for r in results:
        a, b = pairs[r.shape[0] - 8]
        np.testing.assert_allclose(r, matmul_ref(a, b), rtol=1e-5, atol=1e-4)

    in_order = list(grid.map(grid.matmul, pairs, ordered=True, replication=1))
    assert [r.shape[0] for r in in_order] == [8, 9, 10, 11, 12]

    d: Path = node_side.dir
    node_side("model", "mlp", str(d / "mlp-map.onnx"))
    xs = [rng(60 + i).standard_normal((4 + i, 16)) for i in range(3)]
    outs = list(grid.map("onnx", [{"x": xs[0]}, xs[1], xs[2]], model=str(d / "mlp-map.onnx"), ordered=True))
    assert [o["logits"].shape for o in outs] == [(4, 10), (5, 10), (6, 10)]


def test_map_cancels_its_unfinished_jobs_when_stopped(grid):
    pairs = [(np.ones((4, 4)) * i, np.eye(4)) for i in range(3)]
    # Five replicas that must agree, and only two workers: these jobs cannot finish.
    it = grid.map("matmul", pairs, replication=5, adaptive=False, name="py map stopped", max_in_flight=2, timeout=0.5)
    with pytest.raises(TimeoutError):
        next(it)
    mine = [j.status() for j in grid.jobs() if j.status()["name"] == "py map stopped"]
    assert len(mine) == 2 and all(s["state"] == "failed" and s["error"] == "cancelled" for s in mine)


class Recording(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def handle_request(self, request):
        self.calls.append((request.method, request.url.path))
        return super().handle_request(request)


def test_shards_already_on_the_coordinator_are_not_uploaded_again(coordinator, workers):
    a, b = rng(70).standard_normal((16, 24)), rng(71).standard_normal((24, 8))
    first = Recording()
    with tabgrid.Grid(coordinator.url, coordinator.token, transport=first) as g:
        g.matmul(a, b, replication=1).result(timeout=30)
        assert first.calls.count(("POST", "/api/shards")) == 2
        first.calls.clear()
        job = g.matmul(a, b, replication=1)  # same client: it knows both shards
        assert [c for c in first.calls if "/shards" in c[1]] == []
        np.testing.assert_allclose(job.result(timeout=30), matmul_ref(a, b), rtol=1e-5, atol=1e-4)
    second = Recording()
    with tabgrid.Grid(coordinator.url, coordinator.token, transport=second) as g:  # a new client asks first
        g.matmul(a.astype(np.float32), b, replication=1)
        shard_calls = [c for c in second.calls if "/shards" in c[1]]
        assert [m for m, _ in shard_calls] == ["HEAD", "HEAD"]
        second.calls.clear()
        g.upload(a + 1)  # different bytes: uploaded
        assert [m for m, p in second.calls] == ["HEAD", "POST"]


def test_wait_shows_a_progress_bar_only_with_tqdm(grid, capfd):
    job = grid.matmul(np.ones((8, 8)), np.ones((8, 8)), replication=1)
    job.wait(timeout=30)
    err = capfd.readouterr().err
    try:
        import tqdm  # noqa: F401
    except ImportError:
        assert err == ""
    else:
        assert job.id in err
    job.wait(timeout=30, progress=False)
    assert capfd.readouterr().err == ""


CLIENT = """
import sys, numpy as np, tabgrid
grid = tabgrid.Grid(sys.argv[1], sys.argv[2])
job = grid.matmul(np.load(sys.argv[3]), np.load(sys.argv[4]), replication=2)
print(job.id, job.state, flush=True)
job.wait(progress=False)
print("finished", flush=True)
"""


def test_a_job_survives_the_client_being_restarted(coordinator, workers, tmp_path):
    a, b = rng(80).standard_normal((40, 30)), rng(81).standard_normal((30, 20))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    workers.stop()  # nobody computes while the first client lives: it dies mid-job
    try:
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, coordinator.url, coordinator.token, str(tmp_path / "a.npy"), str(tmp_path / "b.npy")],
            env={**os.environ, "PYTHONPATH": SRC},
            stdout=subprocess.PIPE,
            text=True,
        )
        job_id, state = client.stdout.readline().split()
        assert state in ("queued", "running")
        client.kill()
        assert client.wait(10) != 0
    finally:
        workers.start()
    with tabgrid.Grid(coordinator.url, coordinator.token, poll_interval=0.1) as grid:
        job = grid.job(job_id)
        assert job.kind == "matmul"
        np.testing.assert_allclose(job.result(timeout=30), matmul_ref(a, b), rtol=1e-5, atol=1e-4)


def test_quickstart_example_runs(coordinator, workers):
    example = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    run = subprocess.run(
        [sys.executable, str(example)],
        env={**os.environ, "PYTHONPATH": SRC, "TABGRID_URL": coordinator.url, "TABGRID_TOKEN": coordinator.token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verified" in run.stdout


def test_train_an_mlp_the_losses_fall_and_the_parameters_reproduce_the_reported_loss(grid):
    """Three DiLoCo rounds on four separable blobs: the loss falls every round, and numpy's own
    forward pass over the downloaded tensors gives the coordinator's last loss and a good accuracy."""
    r = rng(7)
    centres = r.normal(0, 3, (4, 8))
    y = np.repeat(np.arange(4), 64)
    x = (centres[y] + r.normal(0, 0.5, (y.size, 8))).astype(np.float32)
    job = grid.train(
        x, y, layers=[8, 16, 4], rounds=3, local_steps=8, batch_size=32,
        innerOptimizer={"type": "adamw", "lr": 0.01, "weightDecay": 0}, unitsPerRound=2, roundGraceS=0,
    )
    assert job.kind == "train"
    flat = job.result(timeout=120, progress=False)
    losses = job.losses
    assert len(losses) == 3 and all(b < a for a, b in zip(losses, losses[1:])), losses
    w0, b0, w1, b1 = (job.result(output=n, wait=False) for n in ("w0", "b0", "w1", "b1"))
    assert flat.size == w0.size + b0.size + w1.size + b1.size
    logits = np.maximum(x.astype(np.float64) @ w0 + b0, 0) @ w1 + b1
    logits -= logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(y.size), y].mean()
    assert loss == pytest.approx(losses[-1], rel=1e-3)
    assert (log_p.argmax(axis=1) == y).mean() > 0.9


def test_train_refuses_labels_that_are_not_class_ids(grid):
    with pytest.raises(ValueError, match="class ids"):
        grid.train(np.zeros((4, 2), np.float32), [0, 1.5, 2, 0], layers=[2, 3], rounds=1, local_steps=1, batch_size=2)
