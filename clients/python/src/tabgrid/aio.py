"""The asyncio client: :class:`AsyncGrid` and :class:`AsyncJob`, with the same names as the
synchronous ones (awaited). The operations themselves are shared with ``Grid`` (see ``_core``)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import httpx

from ._base import GridBase, JobBase
from ._core import Call, Core, JobSpec, Op, Progress, Result, Sleep, losses_of, no_job_finished, progress_of
from ._map import MapPlan


class AsyncJob(JobBase):
    """A job on the grid, for asyncio code. ``state``, ``progress`` and ``error`` are as of the
    last status this object saw (``await job.refresh()`` fetches one; ``wait`` updates them)."""

    _name = "AsyncJob"

    def __init__(self, grid: "AsyncGrid", spec: JobSpec, status: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(grid, spec, status)

    async def status(self) -> Dict[str, Any]:
        """The job's status as the API gives it (fetched now)."""
        return await self._grid._run(self._fetch_op())

    async def refresh(self) -> "AsyncJob":
        await self.status()
        return self

    @property
    def state(self) -> Optional[str]:
        """The last state seen (None before any status was fetched)."""
        return None if self._status is None else self._status["state"]

    @property
    def progress(self) -> Progress:
        return progress_of(self._status or {})

    @property
    def error(self) -> Optional[str]:
        return None if self._status is None else self._status.get("error")

    @property
    def losses(self) -> List[float]:
        """A training job's loss after each closed round, from the last status seen."""
        return [] if self._status is None else losses_of(self._status)

    async def wait(self, timeout: Optional[float] = None, progress: bool = True) -> "AsyncJob":
        """Waits until the job is done or failed; ``TimeoutError`` after `timeout` seconds."""
        return await self._grid._run(self._wait_op(timeout, progress))

    async def result(self, timeout: Optional[float] = None, *, progress: bool = True, wait: bool = True, output: Optional[str] = None) -> Result:
        """As ``Job.result``: the verified result (a dict by output name for onnx jobs)."""
        return await self._grid._run(self._result_op(timeout, progress, wait, output))

    async def cancel(self) -> "AsyncJob":
        return await self._grid._run(self._cancel_op())


class AsyncGrid(GridBase):
    """``Grid`` for asyncio: the same constructor and methods, each awaited
    (``job = await grid.matmul(a, b)``, ``c = await job.result()``, ``async for r in grid.map(...)``).
    Close it with ``await grid.aclose()`` or ``async with AsyncGrid(...) as grid``."""

    _job = AsyncJob

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        retries: int = 5,
        poll_interval: float = 1.0,
        timeout: float = 60.0,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._core = Core(url, token, retries, poll_interval)
        self._http = httpx.AsyncClient(**self._core.http_options(timeout, transport))

    async def _run(self, op: Op) -> Any:
        """Drives one operation: sends its calls with httpx.AsyncClient and sleeps with asyncio.sleep."""
        try:
            step = next(op)
            while True:
                step = op.send(await asyncio.sleep(step.seconds) if isinstance(step, Sleep) else await self._send(step))
        except StopIteration as done:
            return done.value
        finally:
            op.close()  # (a cancelled task's operation runs its `finally` now: the progress bar closes)

    async def _send(self, call: Call) -> Union[httpx.Response, httpx.TransportError]:
        """The call's answer, or the transport error it raised: the operation decides whether to retry."""
        try:
            return await self._http.request(**call.http_args())
        except httpx.TransportError as err:
            return err

    async def aclose(self) -> None:
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> "AsyncGrid":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def upload(self, array: Any) -> str:
        return await self._run(self._core.upload(array))

    async def matmul(
        self,
        a: Any,
        b: Any,
        replication: Optional[int] = 2,
        *,
        tile: Union[Tuple[int, int], Mapping[str, int], None] = None,
        tolerance: Any = None,
        adaptive: Optional[bool] = None,
        name: Optional[str] = None,
    ) -> AsyncJob:
        return await self._run(self._submit_op(self._core.matmul(a, b, replication, tile, tolerance, adaptive, name)))

    async def attention(
        self,
        q: Any,
        k: Any,
        v: Any,
        causal: bool = False,
        *,
        replication: Optional[int] = 2,
        block_rows: Optional[int] = None,
        tolerance: Any = None,
        name: Optional[str] = None,
    ) -> AsyncJob:
        return await self._run(self._submit_op(self._core.attention(q, k, v, causal, replication, block_rows, tolerance, name)))

    async def onnx(
        self,
        model: Any,
        inputs: Any,
        *,
        items_per_unit: Optional[int] = None,
        replication: Optional[int] = 2,
        tolerance: Any = None,
        argmax: Union[str, Sequence[str], None] = None,
        flops_per_item: Optional[float] = None,
        name: Optional[str] = None,
    ) -> AsyncJob:
        return await self._run(self._submit_op(self._core.onnx(model, inputs, replication, items_per_unit, tolerance, argmax, flops_per_item, name)))

    async def train(
        self,
        x: Any,
        y: Any,
        *,
        layers: Sequence[int],
        rounds: int,
        local_steps: int,
        batch_size: int,
        init: Any = None,
        replication: Optional[int] = 2,
        name: Optional[str] = None,
        **options: Any,
    ) -> AsyncJob:
        """``Grid.train``, awaited."""
        return await self._run(self._submit_op(self._core.train(x, y, layers, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

    async def train_lm(
        self,
        tokens: Any,
        *,
        vocab: int,
        context: int,
        layers: int,
        d_model: int,
        heads: int,
        rounds: int,
        local_steps: int,
        batch_size: int,
        validation: Any = None,
        init: Any = None,
        replication: Optional[int] = 2,
        name: Optional[str] = None,
        **options: Any,
    ) -> AsyncJob:
        """``Grid.train_lm``, awaited."""
        model = self._model(vocab, context, layers, d_model, heads)
        return await self._run(self._submit_op(self._core.train_lm(tokens, validation, model, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

    async def job(self, job_id: str, *, outputs: Optional[Sequence[str]] = None) -> AsyncJob:
        return await self._run(self._attach_op(job_id, outputs))

    async def jobs(self) -> List[AsyncJob]:
        return await self._run(self._list_op())

    def map(
        self,
        kind: Any,
        batches: Iterable[Any],
        *,
        ordered: bool = False,
        max_in_flight: int = 16,
        timeout: Optional[float] = None,
        **options: Any,
    ) -> AsyncIterator[Result]:
        """As ``Grid.map``, as an async iterator: ``async for result in grid.map("matmul", pairs): …``."""
        return self._map(MapPlan(kind, batches, ordered, max_in_flight, options), timeout)

    async def _map(self, plan: MapPlan, timeout: Optional[float]) -> AsyncIterator[Result]:
        # A task per batch submits its job and awaits its result, so uploads and polls overlap.
        jobs: Dict[int, AsyncJob] = {}  # submitted and unfinished, by batch number

        async def one(i: int, submitting: Awaitable[AsyncJob]) -> Result:
            job = jobs[i] = await submitting
            result = await job.result(progress=False)
            del jobs[i]
            return result

        tasks: Dict["asyncio.Task[Result]", int] = {}
        try:
            while True:
                for i, submitting in plan.submit(self, len(tasks)):
                    tasks[asyncio.ensure_future(one(i, submitting))] = i
                if not tasks:
                    return
                done, _ = await asyncio.wait(list(tasks), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise no_job_finished(timeout, len(tasks))
                for task in done:
                    for result in plan.release(tasks.pop(task), task.result()):
                        yield result
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._run(self._core.cancel_quietly([job.id for job in jobs.values()]))
