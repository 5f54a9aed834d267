"""The synchronous client: :class:`Grid` and :class:`Job`."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import httpx
import numpy as np

from ._core import TERMINAL, Call, Core, JobSpec, Op, Progress, Sleep, bar_for, call_for_batch, kind_name, losses_of, progress_of
from .errors import ApiError

Result = Union[np.ndarray, Dict[str, np.ndarray]]

_sleep = time.sleep  # (tests replace it to see the client's waits without waiting)


class Job:
    """A job on the grid. Made by ``Grid.matmul`` / ``attention`` / ``onnx`` (just after submission)
    or ``Grid.job(id)`` (re-attaching to a job submitted earlier, by any client)."""

    def __init__(self, grid: "Grid", spec: JobSpec, status: Optional[Dict[str, Any]] = None) -> None:
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
        """The model's output names (onnx jobs), when this client knows them."""
        return self._spec.outputs

    def status(self) -> Dict[str, Any]:
        """The job's status as the API gives it (fetched now): state, progress, error, result, …"""
        self._status = self._grid._run(self._grid._core.status(self.id))
        return self._status

    @property
    def state(self) -> str:
        """``queued``, ``running``, ``done`` or ``failed`` (fetched now)."""
        return self.status()["state"]

    @property
    def progress(self) -> Progress:
        """``Progress(done, total)`` work units (fetched now); ``.fraction`` is done/total."""
        return progress_of(self.status())

    @property
    def error(self) -> Optional[str]:
        """Why the job failed (``"cancelled"`` for a cancelled one), from the last status fetched."""
        return (self._status or self.status()).get("error")

    @property
    def losses(self) -> List[float]:
        """A training job's loss after each closed round, oldest first (fetched now)."""
        return losses_of(self.status())

    def wait(self, timeout: Optional[float] = None, progress: bool = True) -> "Job":
        """Blocks until the job is done or failed; raises ``TimeoutError`` after `timeout` seconds.
        With `progress` (and tqdm installed) shows a progress bar of its work units."""
        bar = bar_for(self.id, progress)

        def seen(status: Dict[str, Any]) -> None:
            self._status = status
            bar(status)

        try:
            self._grid._run(self._grid._core.wait(self.id, timeout, seen))
        finally:
            bar(None)
        return self

    def result(self, timeout: Optional[float] = None, *, progress: bool = True, wait: bool = True, output: Optional[str] = None) -> Result:
        """The verified result as a numpy array (onnx jobs: a dict of arrays by output name, or the
        array of `output`). Waits for the job first (see `wait`) unless ``wait=False``, which asks at
        once and raises ``NotReady`` for an unfinished job. A failed job raises ``JobFailed``."""
        if wait:
            self.wait(timeout, progress)
        return self._grid._run(self._grid._core.result(self._spec, output))

    def cancel(self) -> "Job":
        """Cancels the job: it fails with error ``cancelled`` (``Conflict`` if it is already done or failed)."""
        self._status = self._grid._run(self._grid._core.cancel(self.id))
        return self

    def __repr__(self) -> str:
        if self._status is None:
            return f"<tabgrid.Job {self.id} {self.kind}>"
        done, total = progress_of(self._status)
        return f"<tabgrid.Job {self.id} {self.kind} {self._status['state']} {done}/{total}>"


class Grid:
    """A tabgrid coordinator, for researchers: arrays in, verified arrays out.

    >>> grid = tabgrid.Grid("http://localhost:8080", "tg_…")   # token also from TABGRID_TOKEN
    >>> c = grid.matmul(a, b).result()

    `url` defaults to ``TABGRID_URL``, then ``http://localhost:8080``. The client retries a request
    up to `retries` times on ``429`` (waiting as long as ``Retry-After`` says) and on connections
    that fail or reset. `poll_interval` is the longest wait between status polls while waiting.
    `transport` is an optional ``httpx`` transport (a proxy, a test double).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        retries: int = 5,
        poll_interval: float = 1.0,
        timeout: float = 60.0,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self._core = Core(url, token, retries, poll_interval)
        self._http = httpx.Client(
            base_url=self._core.url,
            headers=self._core.headers(),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._core.url

    def _run(self, op: Op) -> Any:
        """Drives one operation: sends its calls with httpx.Client and sleeps its sleeps."""
        try:
            step = next(op)
            while True:
                if isinstance(step, Sleep):
                    _sleep(step.seconds)
                    step = op.send(None)
                    continue
                try:
                    response: Any = self._send(step)
                except httpx.TransportError as err:
                    response = err
                step = op.send(response)
        except StopIteration as done:
            return done.value

    def _send(self, call: Call) -> httpx.Response:
        return self._http.request(call.method, call.path, json=call.json, content=call.content, headers=call.headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Grid":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- inputs ---------------------------------------------------------------------------------

    def upload(self, array: Any) -> str:
        """Uploads an array as a float32 .npy shard (unless the coordinator has it) and returns its
        sha-256. The job methods do this for you."""
        return self._run(self._core.upload(array))

    # --- job kinds ------------------------------------------------------------------------------

    def matmul(
        self,
        a: Any,
        b: Any,
        replication: Optional[int] = 2,
        *,
        tile: Union[Tuple[int, int], Mapping[str, int], None] = None,
        tolerance: Any = None,
        adaptive: Optional[bool] = None,
        name: Optional[str] = None,
    ) -> Job:
        """C = A·B (A m×k, B k×n). `replication`: volunteers that must agree on each unit (1–5);
        `tile`: (rows, cols) of C per work unit; `tolerance`: (atol, rtol); `adaptive=False`
        replicates every unit. Returns the Job at once."""
        return Job(self, self._run(self._core.matmul(a, b, replication, tile, tolerance, adaptive, name)))

    def attention(
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
    ) -> Job:
        """out = softmax(Q·Kᵀ/√d)·V per head; Q, K, V are [heads, seq, d] with d 64 or 128; `causal`
        masks keys after each query. Returns the Job at once."""
        return Job(self, self._run(self._core.attention(q, k, v, causal, replication, block_rows, tolerance, name)))

    def onnx(
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
    ) -> Job:
        """Runs an ONNX model (a path, bytes or an ``onnx.ModelProto``) over a batch: `inputs` maps
        each model input's name to an array whose first axis is the batch (one array will do for a
        one-input model). The job's result is a dict of arrays by output name. Returns the Job at once."""
        return Job(
            self,
            self._run(self._core.onnx(model, inputs, replication, items_per_unit, tolerance, argmax, flops_per_item, name)),
        )

    def train(
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
    ) -> Job:
        """Trains an MLP classifier across the volunteers (DiLoCo rounds of `local_steps` inner steps):
        `x` is [N, features], `y` the N class ids; `layers` the widths (features, hidden…, classes).
        `init`: the initial parameters, a flat array of the model's P values (a finished job's
        ``result()``), else drawn from the seed. Other API fields go as keywords in the API's
        spelling (``innerOptimizer={"type": "sgd", "lr": 0.1}``, ``unitsPerRound=4``,
        ``aggregator="median"``, ``compress="int8"``…; see the README's Training section). The
        result is the flat parameter vector; ``job.losses`` the loss after each round;
        ``job.result(output="w0")`` one tensor. Returns the Job at once."""
        return Job(self, self._run(self._core.train(x, y, layers, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

    def train_lm(
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
    ) -> Job:
        """Trains a decoder-only transformer language model across the volunteers (DiLoCo rounds):
        `tokens` is the training stream, a 1-D array of token ids in [0, vocab); `validation` (the
        same) is what each round is evaluated on, else windows of the training tokens. The model:
        `context` tokens per window, `layers` blocks of width `d_model` with `heads` attention heads
        (`d_model` divisible by `heads`); `batch_size` windows per inner step. `init` and the other
        keywords are as for ``train``. Token ids are checked (ValueError) before anything is sent.
        The result is the flat parameter vector (``job.result(output="l0.wq")`` one tensor);
        ``job.losses`` the validation loss in nats per token after each round. Returns the Job at once."""
        model = {"vocab": vocab, "context": context, "layers": layers, "dModel": d_model, "heads": heads}
        return Job(
            self,
            self._run(self._core.train_lm(tokens, validation, model, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)),
        )

    # --- jobs -----------------------------------------------------------------------------------

    def job(self, job_id: str, *, outputs: Optional[Sequence[str]] = None) -> Job:
        """Re-attaches to a job submitted earlier (by this or any client); ``NotFound`` if there is
        none. An onnx job's output names come with its status (``outputs`` overrides them)."""
        status = self._run(self._core.status(job_id))
        return Job(self, JobSpec(status["id"], status["kind"], list(outputs) if outputs is not None else status.get("outputs")), status)

    def jobs(self) -> List[Job]:
        """Every job on the coordinator, with its status as of now."""
        return [Job(self, JobSpec(s["id"], s["kind"], s.get("outputs")), s) for s in self._run(self._core.jobs())]

    def map(
        self,
        kind: Any,
        batches: Iterable[Any],
        *,
        ordered: bool = False,
        max_in_flight: int = 16,
        timeout: Optional[float] = None,
        **options: Any,
    ) -> Iterator[Result]:
        """Submits one job per batch and yields their results as they finish (in the order of
        `batches` with ``ordered=True``), keeping at most `max_in_flight` jobs submitted and
        unfinished. `kind` is ``"matmul"``, ``"attention"`` or ``"onnx"`` (or ``grid.matmul`` …);
        each batch is a tuple of arguments (``(a, b)``), a dict of keyword arguments, or one
        argument — for onnx the inputs, with ``model=`` given to map. Other keyword arguments go to
        every job (``replication=1``). A failed job raises ``JobFailed``; `timeout` bounds the wait
        for each next result. Jobs still unfinished when the loop stops early are cancelled."""
        name = kind_name(kind)
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        return self._map(getattr(self, name), name, iter(batches), ordered, max_in_flight, timeout, options)

    def _map(self, fn: Any, name: str, batches: Iterator[Any], ordered: bool, max_in_flight: int, timeout: Optional[float], options: Dict[str, Any]) -> Iterator[Result]:
        in_flight: List[Tuple[int, Job]] = []
        finished: Dict[int, Result] = {}
        next_out = submitted = 0
        exhausted = False
        delay = min(0.05, self._core.poll_interval)
        since = time.monotonic()
        try:
            while True:
                while not exhausted and len(in_flight) < max_in_flight:
                    try:
                        batch = next(batches)
                    except StopIteration:
                        exhausted = True
                        break
                    in_flight.append((submitted, call_for_batch(fn, name, batch, options)))
                    submitted += 1
                if not in_flight:
                    return
                ended = [(i, job) for i, job in in_flight if job.status()["state"] in TERMINAL]
                if not ended:
                    if timeout is not None and time.monotonic() - since > timeout:
                        raise TimeoutError(f"no job of the map finished within {timeout} s ({len(in_flight)} running)")
                    _sleep(delay)
                    delay = min(delay * 1.5, self._core.poll_interval)
                    continue
                delay = min(0.05, self._core.poll_interval)
                since = time.monotonic()
                for entry in ended:
                    in_flight.remove(entry)
                    i, job = entry
                    result = job.result(wait=False)
                    if not ordered:
                        yield result
                        continue
                    finished[i] = result
                    while next_out in finished:
                        yield finished.pop(next_out)
                        next_out += 1
        finally:
            for _, job in in_flight:
                try:
                    job.cancel()
                except (ApiError, ConnectionError):
                    pass
