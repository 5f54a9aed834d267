"""The synchronous client: :class:`Grid` and :class:`Job`."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import httpx

from ._base import GridBase, JobBase
from ._core import Call, Core, JobSpec, Op, Progress, Result, Sleep, losses_of, progress_of
from ._map import MapPlan

_sleep = time.sleep  # (tests replace it to see the client's waits without waiting)


class Job(JobBase):
    """A job on the grid. Made by ``Grid.matmul`` / ``attention`` / ``onnx`` (just after submission)
    or ``Grid.job(id)`` (re-attaching to a job submitted earlier, by any client)."""

    def __init__(self, grid: "Grid", spec: JobSpec, status: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(grid, spec, status)

    def status(self) -> Dict[str, Any]:
        """The job's status as the API gives it (fetched now): state, progress, error, result, …"""
        return self._grid._run(self._fetch_op())

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
        return self._grid._run(self._wait_op(timeout, progress))

    def result(self, timeout: Optional[float] = None, *, progress: bool = True, wait: bool = True, output: Optional[str] = None) -> Result:
        """The verified result as a numpy array (onnx jobs: a dict of arrays by output name, or the
        array of `output`). Waits for the job first (see `wait`) unless ``wait=False``, which asks at
        once and raises ``NotReady`` for an unfinished job. A failed job raises ``JobFailed``."""
        return self._grid._run(self._result_op(timeout, progress, wait, output))

    def cancel(self) -> "Job":
        """Cancels the job: it fails with error ``cancelled`` (``Conflict`` if it is already done or failed)."""
        return self._grid._run(self._cancel_op())


class Grid(GridBase):
    """A tabgrid coordinator, for researchers: arrays in, verified arrays out.

    >>> grid = tabgrid.Grid("http://localhost:8080", "tg_…")   # token also from TABGRID_TOKEN
    >>> c = grid.matmul(a, b).result()

    `url` defaults to ``TABGRID_URL``, then ``http://localhost:8080``. The client retries a request
    up to `retries` times on ``429`` (waiting as long as ``Retry-After`` says) and on connections
    that fail or reset. `poll_interval` is the longest wait between status polls while waiting.
    `transport` is an optional ``httpx`` transport (a proxy, a test double).
    """

    _job = Job

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
        self._http = httpx.Client(**self._core.http_options(timeout, transport))

    def _run(self, op: Op) -> Any:
        """Drives one operation: sends its calls with httpx.Client and sleeps its sleeps."""
        try:
            step = next(op)
            while True:
                step = op.send(_sleep(step.seconds) if isinstance(step, Sleep) else self._send(step))
        except StopIteration as done:
            return done.value
        finally:
            op.close()  # (an operation interrupted here runs its `finally` now: the progress bar closes)

    def _send(self, call: Call) -> Union[httpx.Response, httpx.TransportError]:
        """The call's answer, or the transport error it raised: the operation decides whether to retry."""
        try:
            return self._http.request(**call.http_args())
        except httpx.TransportError as err:
            return err

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
        return self._run(self._submit_op(self._core.matmul(a, b, replication, tile, tolerance, adaptive, name)))

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
        return self._run(self._submit_op(self._core.attention(q, k, v, causal, replication, block_rows, tolerance, name)))

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
        return self._run(self._submit_op(self._core.onnx(model, inputs, replication, items_per_unit, tolerance, argmax, flops_per_item, name)))

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
        return self._run(self._submit_op(self._core.train(x, y, layers, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

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
        model = self._model(vocab, context, layers, d_model, heads)
        return self._run(self._submit_op(self._core.train_lm(tokens, validation, model, rounds, local_steps, batch_size, init, {"replication": replication, **options}, name)))

    # --- jobs -----------------------------------------------------------------------------------

    def job(self, job_id: str, *, outputs: Optional[Sequence[str]] = None) -> Job:
        """Re-attaches to a job submitted earlier (by this or any client); ``NotFound`` if there is
        none. An onnx job's output names come with its status (``outputs`` overrides them)."""
        return self._run(self._attach_op(job_id, outputs))

    def jobs(self) -> List[Job]:
        """Every job on the coordinator, with its status as of now."""
        return self._run(self._list_op())

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
        return self._map(MapPlan(kind, batches, ordered, max_in_flight, options), timeout)

    def _map(self, plan: MapPlan, timeout: Optional[float]) -> Iterator[Result]:
        # Polls the unfinished jobs' statuses (in one thread); by batch number, in submission order.
        in_flight: Dict[int, Job] = {}
        try:
            while True:
                for i, job in plan.submit(self, len(in_flight)):
                    in_flight[i] = job
                if not in_flight:
                    return
                ended = self._run(self._core.first_ended([job.id for job in in_flight.values()], timeout))
                for i, job in [(i, job) for i, job in in_flight.items() if job.id in ended]:
                    del in_flight[i]
                    yield from plan.release(i, job.result(wait=False))
        finally:
            self._run(self._core.cancel_quietly([job.id for job in in_flight.values()]))
