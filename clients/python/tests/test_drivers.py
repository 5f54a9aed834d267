"""Grid and AsyncGrid are two drivers of the same operations (``tabgrid._core``): the same script of
coordinator answers (httpx's MockTransport) gives the same requests, waits, results and errors
through both; a wait's progress bar closes however the wait ends; and map's plan (``_map``) hands
out batches and releases results as documented."""

from __future__ import annotations

import asyncio
import inspect
import io
from typing import Any, Callable, Dict, List, Tuple

import httpx
import numpy as np
import pytest

import tabgrid
import tabgrid._base
import tabgrid.aio
import tabgrid.grid
from tabgrid._map import MapPlan


def status(state: str, done: int = 0) -> Dict[str, Any]:
    return {"id": "j_a", "kind": "matmul", "state": state, "progress": {"done": done, "total": 4}}


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


class Script:
    """The coordinator's answers, in order, by "METHOD /path" or by method alone (an exception is
    raised as the transport's); records every request."""

    def __init__(self, answers: Dict[str, List[Any]]) -> None:
        self.answers = answers
        self.sent: List[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        self.sent.append(key)
        answer = self.answers[key if key in self.answers else request.method].pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def settle(value: Any) -> Any:
    """A sync Grid's answer as it is, an AsyncGrid's awaited: one scenario text serves both."""
    return await value if inspect.isawaitable(value) else value


def drive(flavour: str, script: Script, scenario: Callable[[Any], Any], monkeypatch, **kw) -> Tuple[Any, List[float]]:
    """Runs `scenario(grid)` with a Grid or an AsyncGrid over `script`: its outcome (the value, or
    the exception's type and message) and the waits the client slept."""
    waits: List[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    if flavour == "sync":
        monkeypatch.setattr(tabgrid.grid, "_sleep", waits.append)
        grid: Any = tabgrid.Grid("http://grid.test", "t", transport=httpx.MockTransport(script), **kw)
    else:
        monkeypatch.setattr(tabgrid.aio.asyncio, "sleep", record)
        grid = tabgrid.AsyncGrid("http://grid.test", "t", transport=httpx.MockTransport(script), **kw)

    async def main() -> Any:
        try:
            return await scenario(grid)
        except Exception as err:  # the outcome compared is the error itself
            return type(err), str(err)
        finally:
            await settle(grid.close())

    return asyncio.run(main()), waits


async def list_jobs(grid: Any) -> Any:
    return [(job.id, job.kind) for job in await settle(grid.jobs())]


async def wait_then_result(grid: Any) -> Any:
    job = await settle(grid.job("j_a"))
    return await settle(job.result(progress=False))


async def submit(grid: Any) -> Any:
    return await settle(grid.matmul(np.ones((2, 2)), np.ones((2, 2))))


RESULT = np.arange(6, dtype=np.float32).reshape(2, 3)

SCENARIOS = {
    # A refused connection, then a 429: retried after 0.25 s, then after Retry-After's 0 s.
    "retries": (
        lambda: {
            "GET /api/jobs": [
                httpx.ConnectError("connection refused"),
                httpx.Response(429, headers={"retry-after": "0"}, json={"error": {"code": "rate_limited", "message": "slow"}}),
                httpx.Response(200, json={"jobs": [status("done", 4)]}),
            ]
        },
        list_jobs,
        ["GET /api/jobs"] * 3,
        [("j_a", "matmul")],
        [0.25, 0.0],
    ),
    # Polls 50 ms, then 1.5 times longer, until done; then the result.
    "wait": (
        lambda: {
            "GET /api/jobs/j_a": [httpx.Response(200, json=status(s)) for s in ("queued", "queued", "running", "done")],
            "GET /api/jobs/j_a/result": [httpx.Response(200, content=npy(RESULT))],
        },
        wait_then_result,
        ["GET /api/jobs/j_a"] * 4 + ["GET /api/jobs/j_a/result"],
        RESULT,
        [0.05, 0.075],
    ),
    # A submission whose connection broke once sent is never sent again.
    "no-resubmit": (
        lambda: {
            "HEAD": [httpx.Response(200)],  # (a and b are the same shard: one HEAD)
            "POST /api/jobs": [httpx.RemoteProtocolError("server disconnected")],
        },
        submit,
        ["HEAD", "POST /api/jobs"],
        (ConnectionError, "may or may not have been submitted"),
        [],
    ),
}


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_both_drivers_send_wait_and_answer_alike(flavour, name, monkeypatch):
    answers, scenario, requests, expected, waits_expected = SCENARIOS[name]
    script = Script(answers())
    outcome, waits = drive(flavour, script, scenario, monkeypatch, poll_interval=1.0)
    assert [s if not s.startswith("HEAD") else "HEAD" for s in script.sent] == requests
    if isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(outcome, expected)
    elif isinstance(expected, tuple) and isinstance(expected[0], type):
        assert outcome[0] is expected[0] and expected[1] in outcome[1]
    else:
        assert outcome == expected
    assert waits == pytest.approx(waits_expected)


def recording_bars(monkeypatch) -> List[Any]:
    """Replaces the progress bar (tqdm, when installed) with a list of what it was given."""
    seen: List[Any] = []
    monkeypatch.setattr(tabgrid._base, "bar_for", lambda job_id, enabled: seen.append)
    return seen


def running_forever(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=status("running", 1))


def test_the_progress_bar_closes_when_a_wait_times_out(monkeypatch):
    seen = recording_bars(monkeypatch)
    with tabgrid.Grid("http://grid.test", "t", poll_interval=0.02, transport=httpx.MockTransport(running_forever)) as grid:
        job = grid.job("j_a")
        with pytest.raises(TimeoutError, match="j_a is still running"):
            job.wait(timeout=0.1)
    assert len(seen) >= 2 and seen[0]["state"] == "running" and seen[-1] is None


def test_the_progress_bar_closes_when_an_async_wait_is_cancelled(monkeypatch):
    seen = recording_bars(monkeypatch)

    async def main() -> None:
        async with tabgrid.AsyncGrid("http://grid.test", "t", poll_interval=0.02, transport=httpx.MockTransport(running_forever)) as grid:
            job = await grid.job("j_a")
            task = asyncio.ensure_future(job.wait())
            await asyncio.sleep(0.1)
            assert seen and seen[-1] is not None  # polling, the bar open
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert seen[-1] is None and job.state == "running"

    asyncio.run(main())


class Submitter:
    """A stand-in for a grid's job method, for the plan alone: records what each batch became."""

    def __init__(self) -> None:
        self.calls: List[Tuple[tuple, dict]] = []

    def matmul(self, *args: Any, **kwargs: Any) -> int:
        self.calls.append((args, kwargs))
        return len(self.calls) - 1


def test_the_plan_submits_no_more_than_max_in_flight_and_stops_at_the_end():
    pulled: List[int] = []

    def batches():
        for i in range(5):
            pulled.append(i)
            yield (i, i + 1)

    grid = Submitter()
    plan = MapPlan("matmul", batches(), ordered=False, max_in_flight=3, options={"replication": 1})
    assert list(plan.submit(grid, 0)) == [(0, 0), (1, 1), (2, 2)]
    assert pulled == [0, 1, 2]  # lazily: no batch is read before there is room for it
    assert list(plan.submit(grid, 3)) == []
    assert list(plan.submit(grid, 1)) == [(3, 3), (4, 4)]
    assert list(plan.submit(grid, 0)) == []
    assert grid.calls == [((i, i + 1), {"replication": 1}) for i in range(5)]


@pytest.mark.parametrize("finish_order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]])
def test_the_plan_releases_results_in_batch_order_when_ordered(finish_order):
    ordered = MapPlan("matmul", [], ordered=True, max_in_flight=4, options={})
    unordered = MapPlan("matmul", [], ordered=False, max_in_flight=4, options={})
    released: List[str] = []
    for n, i in enumerate(finish_order, start=1):
        released += ordered.release(i, f"r{i}")
        # All that is out: the longest run of finished batches from batch 0.
        prefix = 0
        while prefix in finish_order[:n]:
            prefix += 1
        assert released == [f"r{j}" for j in range(prefix)]
        assert unordered.release(i, f"r{i}") == [f"r{i}"]
    assert released == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize(
    "kind, max_in_flight, error",
    [("conv", 4, "unknown job kind 'conv'"), ("matmul", 0, "max_in_flight must be at least 1")],
)
@pytest.mark.parametrize("flavour", [tabgrid.Grid, tabgrid.AsyncGrid])
def test_map_refuses_a_wrong_kind_or_limit_when_called(flavour, kind, max_in_flight, error):
    grid = flavour("http://grid.test", "t", transport=httpx.MockTransport(running_forever))
    with pytest.raises(ValueError, match=error):
        grid.map(kind, [], max_in_flight=max_in_flight)  # before any iteration
    asyncio.run(settle(grid.close()))
