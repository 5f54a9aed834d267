"""The asyncio client: :class:`AsyncGrid` and :class:`AsyncJob`, with the same names as the
synchronous ones (awaited). The operations themselves are shared with ``Grid`` (see ``_core``)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import httpx

from ._core import Call, Core, JobSpec, Op, Progress, Sleep, bar_for, call_for_batch, kind_name, losses_of, progress_of
from .errors import ApiError
from .grid import Result


class AsyncJob:
    """A job on the grid, for asyncio code. ``state``, ``progress`` and ``error`` are as of the
    last status this object saw (``await job.refresh()`` fetches one; ``wait`` updates them)."""

    def __init__(self, grid: "AsyncGrid", spec: JobSpec, status: Optional[Dict[str, Any]] = None) -> None:
        self._grid = grid
        self._spec = spec
        self._status = status

    @property
    def id(self) -> str:
        return self._spec.id

    @property
    def kind(self) -> str:
        return self._spec.kind

    @property
    def outputs(self) -> Optional[List[str]]:
        return self._spec.outputs

    async def status(self) -> Dict[str, Any]:
        """The job's status as the API gives it (fetched now)."""
        self._status = await self._grid._run(self._grid._core.status(self.id))
        return self._status

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
        bar = bar_for(self.id, progress)

        def seen(status: Dict[str, Any]) -> None:
            self._status = status
            bar(status)

        try:
            await self._grid._run(self._grid._core.wait(self.id, timeout, seen))
        finally:
            bar(None)
        return self

    async def result(self, timeout: Optional[float] = None, *, progress: bool = True, wait: bool = True, output: Optional[str] = None) -> Result:
        """As ``Job.result``: the verified result (a dict by output name for onnx jobs)."""
        if wait:
            await self.wait(timeout, progress)
        return await self._grid._run(self._grid._core.result(self._spec, output))

    async def cancel(self) -> "AsyncJob":
        self._status = await self._grid._run(self._grid._core.cancel(self.id))
        return self

    def __repr__(self) -> str:
        if self._status is None:
            return f"<tabgrid.AsyncJob {self.id} {self.kind}>"
        done, total = progress_of(self._status)
        return f"<tabgrid.AsyncJob {self.id} {self.kind} {self._status['state']} {done}/{total}>"


class AsyncGrid:
    """``Grid`` for asyncio: the same constructor and methods, each awaited
    (``job = await grid.matmul(a, b)``, ``c = await job.result()``, ``async for r in grid.map(...)``).
    Close it with ``await grid.aclose()`` or ``async with AsyncGrid(...) as grid``."""

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
        self._http = httpx.AsyncClient(
            base_url=self._core.url,
            headers=self._core.headers(),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._core.url

    async def _run(self, op: Op) -> Any:
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = op.send(None)
                    continue
                try:
                    response: Any = await self._send(step)
                except httpx.TransportError as err:
                    response = err
                step = op.send(response)
        except StopIteration as done:
            return done.value

    async def _send(self, call: Call) -> httpx.Response:
        return await self._http.request(call.method, call.path, json=call.json, content=call.content, headers=call.headers)

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
        return AsyncJob(self, await self._run(self._core.matmul(a, b, replication, tile, tolerance, adaptive, name)))

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
        return AsyncJob(self, await self._run(self._core.attention(q, k, v, causal, replication, block_rows, tolerance, name)))

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
        return AsyncJob(
            self,
            await self._run(self._core.onnx(model, inputs, replication, items_per_unit, tolerance, argmax, flops_per_item, name)),
        )

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
        return AsyncJob(self, await self._run(self._core.train(x, y, layers, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

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
        model = {"vocab": vocab, "context": context, "layers": layers, "dModel": d_model, "heads": heads}
        return AsyncJob(
            self,
            await self._run(self._core.train_lm(tokens, validation, model, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)),
        )

    async def job(self, job_id: str, *, outputs: Optional[Sequence[str]] = None) -> AsyncJob:
        status = await self._run(self._core.status(job_id))
        return AsyncJob(self, JobSpec(status["id"], status["kind"], list(outputs) if outputs is not None else status.get("outputs")), status)

    async def jobs(self) -> List[AsyncJob]:
        return [AsyncJob(self, JobSpec(s["id"], s["kind"], s.get("outputs")), s) for s in await self._run(self._core.jobs())]

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
        name = kind_name(kind)
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        return self._map(getattr(self, name), name, iter(batches), ordered, max_in_flight, timeout, options)

    async def _map(self, fn: Any, name: str, batches: Any, ordered: bool, max_in_flight: int, timeout: Optional[float], options: Dict[str, Any]) -> AsyncIterator[Result]:
        jobs: Dict[int, AsyncJob] = {}

        async def one(i: int, batch: Any) -> Result:
            job = await call_for_batch(fn, name, batch, options)
            jobs[i] = job
            result = await job.result(progress=False)
            del jobs[i]
            return result

        tasks: Dict["asyncio.Task[Result]", int] = {}
        finished: Dict[int, Result] = {}
        next_out = submitted = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(tasks) < max_in_flight:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        exhausted = True
                        break
                    tasks[asyncio.ensure_future(one(submitted, batch))] = submitted
                    submitted += 1
                if not tasks:
                    return
                done, _ = await asyncio.wait(list(tasks), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TimeoutError(f"no job of the map finished within {timeout} s ({len(tasks)} running)")
                for task in done:
                    i = tasks.pop(task)
                    result = task.result()
                    if not ordered:
                        yield result
                        continue
                    finished[i] = result
                    while next_out in finished:
                        yield finished.pop(next_out)
                        next_out += 1
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for job in list(jobs.values()):
                try:
                    await job.cancel()
                except (ApiError, ConnectionError):
                    pass
