"""tabgrid.AsyncGrid: the same names as Grid, awaited, against the real coordinator and workers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import tabgrid
from test_jobs import attention_ref, matmul_ref, rng


def test_async_grid_round_trips(coordinator, workers, node_side):
    d = node_side.dir
    node_side("model", "mlp", str(d / "mlp-async.onnx"))

    async def main():
        async with tabgrid.AsyncGrid(coordinator.url, coordinator.token, poll_interval=0.1) as grid:
            a, b = rng(90).standard_normal((30, 20)), rng(91).standard_normal((20, 10))
            q, k, v = (rng(92 + i).standard_normal((1, 24, 64)) for i in range(3))
            x = rng(95).standard_normal((12, 16))
            # Three jobs at once.
            jobs = await asyncio.gather(
                grid.matmul(a, b, replication=2),
                grid.attention(q, k, v, causal=True),
                grid.onnx(str(d / "mlp-async.onnx"), {"x": x}, items_per_unit=5),
            )
            c, att, out = await asyncio.gather(*(j.result(timeout=30) for j in jobs))
            np.testing.assert_allclose(c, matmul_ref(a, b), rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(att, attention_ref(q, k, v, True), rtol=1e-4, atol=1e-5)
            assert out["logits"].shape == (12, 10)
            assert jobs[0].state == "done" and jobs[0].progress.done == jobs[0].progress.total

            again = await grid.job(jobs[0].id)
            np.testing.assert_array_equal(await again.result(), c)

            pairs = [(rng(100 + i).standard_normal((3 + i, 6)), rng(110 + i).standard_normal((6, 4))) for i in range(4)]
            results = [r async for r in grid.map("matmul", pairs, ordered=True, replication=1, max_in_flight=2)]
            assert [r.shape for r in results] == [(3, 4), (4, 4), (5, 4), (6, 4)]
            unordered = [r async for r in grid.map(grid.matmul, pairs, replication=1)]
            assert sorted(r.shape[0] for r in unordered) == [3, 4, 5, 6]

            with pytest.raises(tabgrid.BadRequest, match="inner dimensions differ"):
                await grid.matmul(np.ones((3, 4)), np.ones((5, 2)))
            with pytest.raises(tabgrid.NotFound):
                await grid.job("j_nosuchjob")
            stuck = await grid.matmul(np.ones((4, 4)), np.eye(4), replication=5, adaptive=False)
            with pytest.raises(tabgrid.NotReady):
                await stuck.result(wait=False)
            await stuck.cancel()
            assert stuck.state == "failed"
            with pytest.raises(tabgrid.JobFailed):
                await stuck.result()

    asyncio.run(main())
