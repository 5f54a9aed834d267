"""What the synchronous and the asyncio client share: every operation is written once, as a
generator that yields the HTTP calls and the sleeps it needs (:class:`Call`, :class:`Sleep`) and
gets back each call's ``httpx.Response`` (or the transport error it raised). ``Grid`` runs these
generators with ``httpx.Client`` and ``time.sleep``, ``AsyncGrid`` with ``httpx.AsyncClient`` and
``asyncio.sleep``, so retries, uploads, polling and error handling are the same code in both
(``_base`` builds the classes' methods from them, ``_map`` holds what their ``map`` shares)."""

from __future__ import annotations

import email.utils
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import httpx
import numpy as np

from .arrays import as_token_ids, as_vector, from_npy, sha256, to_npy
from .errors import ApiError, JobFailed, NotReady, RateLimited, error_from

__version__ = "0.1.0"

TERMINAL = ("done", "failed")

#: A job's result: an array, or for onnx jobs a dict of arrays by output name.
Result = Union[np.ndarray, Dict[str, np.ndarray]]


@dataclass
class Call:
    """One HTTP request to the coordinator."""

    method: str
    path: str
    json: Any = None
    content: Optional[bytes] = None
    #: Statuses that are answers rather than errors.
    ok: Tuple[int, ...] = (200, 201)
    #: Whether the request may be sent again after the connection broke while it was in flight
    #: (true for reads and content-addressed uploads; false for a job submission, which could
    #: otherwise run twice).
    replay_safe: bool = True
    headers: Dict[str, str] = field(default_factory=dict)

    def http_args(self) -> Dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (and ``AsyncClient.request``) for it."""
        return {"method": self.method, "url": self.path, "json": self.json, "content": self.content, "headers": self.headers}


@dataclass
class Sleep:
    seconds: float


Op = Generator[Union[Call, Sleep], Any, Any]

# Transport errors raised before the request could reach the coordinator: always safe to retry.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Broken or reset connections, and timeouts, once the request may have been sent.
_BROKEN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadTimeout, httpx.WriteTimeout)


@dataclass
class JobSpec:
    """What a client knows of a job: its id, kind and (for onnx jobs) the model's output names."""

    id: str
    kind: str
    outputs: Optional[List[str]] = None


class Progress(tuple):
    """``(done, total)`` work units, with ``fraction``."""

    def __new__(cls, done: int, total: int) -> "Progress":
        return super().__new__(cls, (done, total))

    @property
    def done(self) -> int:
        return self[0]

    @property
    def total(self) -> int:
        return self[1]

    @property
    def fraction(self) -> float:
        return self[0] / self[1] if self[1] else 0.0

    def __repr__(self) -> str:
        return f"Progress(done={self[0]}, total={self[1]})"


def progress_of(status: Mapping[str, Any]) -> Progress:
    p = status.get("progress") or {}
    return Progress(int(p.get("done", 0)), int(p.get("total", 0)))


def losses_of(status: Mapping[str, Any]) -> List[float]:
    """A training job's loss after each closed round (the coordinator's own evaluation), oldest first."""
    return [float(r["loss"]) for r in status.get("perRound") or []]


def no_job_finished(timeout: Optional[float], running: int) -> TimeoutError:
    """``map``'s error when `timeout` seconds passed and none of its `running` jobs finished."""
    return TimeoutError(f"no job of the map finished within {timeout} s ({running} running)")


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def model_bytes(model: Any) -> bytes:
    """An ONNX model given as a path, bytes, or an ``onnx.ModelProto`` (anything with ``SerializeToString``)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX model file {path!r}")
        with open(path, "rb") as f:
            return f.read()
    serialize = getattr(model, "SerializeToString", None)
    if callable(serialize):  # onnx.ModelProto (the onnx package is not needed for the rest)
        return serialize()
    raise TypeError(f"the model must be a path, bytes or an onnx.ModelProto, not {type(model).__name__}")


def tolerance_body(tolerance: Any, per_output: bool = False) -> Dict[str, Any]:
    """``(atol, rtol)`` or ``{"atol": a, "rtol": r}``; for onnx also ``{output: (atol, rtol)}``."""
    if isinstance(tolerance, Mapping):
        if set(tolerance) <= {"atol", "rtol"}:
            return {k: float(v) for k, v in tolerance.items()}
        if per_output:
            return {str(name): tolerance_body(t) for name, t in tolerance.items()}
        raise ValueError(f"tolerance must be (atol, rtol) or {{'atol': a, 'rtol': r}}, got {tolerance!r}")
    atol, rtol = tolerance
    return {"atol": float(atol), "rtol": float(rtol)}


class Core:
    """The client's state (URL, token, shards known to be on the coordinator, models read) and its
    operations, as generators (see the module docstring)."""

    def __init__(self, url: Optional[str], token: Optional[str], retries: int, poll_interval: float) -> None:
        self.url = (url or os.environ.get("TABGRID_URL") or "http://localhost:8080").rstrip("/")
        token = token or os.environ.get("TABGRID_TOKEN")
        if not token:
            raise ValueError(
                "no API token: pass tabgrid.Grid(url, token) or set TABGRID_TOKEN "
                "(`npm start` prints it; `npm run tokens -- create --scope submit` makes more)"
            )
        self.token = token
        self.retries = int(retries)
        self.poll_interval = float(poll_interval)
        #: sha-256 of every shard this client uploaded or found on the coordinator.
        self.known_shards: set = set()
        #: POST /api/models answers by the model's sha-256 (input and output names).
        self.models: Dict[str, Dict[str, Any]] = {}

    def headers(self) -> Dict[str, str]:
        return {"authorization": f"Bearer {self.token}", "user-agent": f"tabgrid-python/{__version__}"}

    def http_options(self, timeout: float, transport: Any) -> Dict[str, Any]:
        """The keyword arguments of the ``httpx.Client`` (or ``AsyncClient``) that sends the calls."""
        return {
            "base_url": self.url,
            "headers": self.headers(),
            "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            "transport": transport,
        }

    # --- one call, with the retries -------------------------------------------------------------

    def request(self, call: Call) -> Op:
        attempt = 0
        while True:
            outcome = yield call
            if isinstance(outcome, BaseException):
                retryable = isinstance(outcome, _NOT_SENT) or (call.replay_safe and isinstance(outcome, _BROKEN))
                if retryable and attempt < self.retries:
                    yield Sleep(min(0.25 * 2**attempt, 5.0))
                    attempt += 1
                    continue
                hint = "" if call.replay_safe or isinstance(outcome, _NOT_SENT) else (
                    "; the job may or may not have been submitted (grid.jobs() lists them)"
                )
                raise ConnectionError(f"{call.method} {self.url}{call.path} failed: {outcome!r}{hint}") from outcome
            status = outcome.status_code
            if status in call.ok:
                return outcome
            if status == 429:
                wait = parse_retry_after(outcome.headers.get("retry-after"))
                if attempt < self.retries:
                    yield Sleep(wait if wait is not None else min(0.25 * 2**attempt, 5.0))
                    attempt += 1
                    continue
                raise error_from(status, outcome.content, wait)
            raise error_from(status, outcome.content)

    def get_json(self, path: str) -> Op:
        r = yield from self.request(Call("GET", path))
        return r.json()

    # --- inputs ---------------------------------------------------------------------------------

    def upload(self, value: Any, what: str = "array") -> Op:
        """Uploads an array as a float32 .npy shard, unless the coordinator has it: returns its sha-256."""
        data = to_npy(value, what)
        sha = sha256(data)
        if sha in self.known_shards:
            return sha
        # Shards are content-addressed and public by id: HEAD says whether it is there already.
        head = yield from self.request(Call("HEAD", f"/shards/{sha}", ok=(200, 404)))
        if head.status_code == 404:
            r = yield from self.request(
                Call("POST", "/api/shards", content=data, ok=(201,), headers={"content-type": "application/octet-stream"})
            )
            stored = r.json()["sha256"]
            if stored != sha:
                raise ApiError("internal", f"the coordinator stored {what} as {stored}, not {sha}", r.status_code)
        self.known_shards.add(sha)
        return sha

    def upload_model(self, model: Any) -> Op:
        """Uploads an ONNX model once per client (its answer names the inputs and outputs)."""
        data = model_bytes(model)
        sha = sha256(data)
        if sha not in self.models:
            r = yield from self.request(
                Call("POST", "/api/models", content=data, ok=(201,), headers={"content-type": "application/octet-stream"})
            )
            self.models[sha] = r.json()
            self.known_shards.add(sha)
        return self.models[sha]

    # --- jobs -----------------------------------------------------------------------------------

    def submit(self, body: Dict[str, Any], outputs: Optional[List[str]] = None) -> Op:
        r = yield from self.request(Call("POST", "/api/jobs", json=body, ok=(201,), replay_safe=False))
        return JobSpec(r.json()["id"], body["kind"], outputs)

    @staticmethod
    def _common(body: Dict[str, Any], replication: Optional[int], name: Optional[str]) -> Dict[str, Any]:
        if replication is not None:
            body["replication"] = int(replication)
        if name is not None:
            body["name"] = str(name)
        return body

    def matmul(self, a: Any, b: Any, replication: Optional[int], tile: Any, tolerance: Any, adaptive: Optional[bool], name: Optional[str]) -> Op:
        inputs = {"a": (yield from self.upload(a, "a")), "b": (yield from self.upload(b, "b"))}
        body = self._common({"kind": "matmul", "inputs": inputs}, replication, name)
        if tile is not None:
            rows, cols = (tile["rows"], tile["cols"]) if isinstance(tile, Mapping) else tile
            body["tile"] = {"rows": int(rows), "cols": int(cols)}
        if tolerance is not None:
            body["tolerance"] = tolerance_body(tolerance)
        if adaptive is not None:
            body["adaptive"] = bool(adaptive)
        return (yield from self.submit(body))

    def attention(self, q: Any, k: Any, v: Any, causal: bool, replication: Optional[int], block_rows: Optional[int], tolerance: Any, name: Optional[str]) -> Op:
        inputs = {}
        for n, x in (("q", q), ("k", k), ("v", v)):
            inputs[n] = yield from self.upload(x, n)
        body = self._common({"kind": "attention", "inputs": inputs, "causal": bool(causal)}, replication, name)
        if block_rows is not None:
            body["blockRows"] = int(block_rows)
        if tolerance is not None:
            body["tolerance"] = tolerance_body(tolerance)
        return (yield from self.submit(body))

    def onnx(self, model: Any, inputs: Any, replication: Optional[int], items_per_unit: Optional[int], tolerance: Any, argmax: Any, flops_per_item: Optional[float], name: Optional[str]) -> Op:
        info = yield from self.upload_model(model)
        names = [t["name"] for t in info.get("inputs", [])]
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise TypeError(f"the model takes inputs {', '.join(map(repr, names))}: pass a dict of arrays by input name")
            inputs = {names[0]: inputs}
        shards = {}
        for input_name, value in inputs.items():
            shards[str(input_name)] = yield from self.upload(value, f"inputs[{input_name!r}]")
        body = self._common({"kind": "onnx", "model": info["sha256"], "inputs": shards}, replication, name)
        if items_per_unit is not None:
            body["itemsPerUnit"] = int(items_per_unit)
        if tolerance is not None:
            body["tolerance"] = tolerance_body(tolerance, per_output=True)
        if argmax is not None:
            body["argmax"] = [argmax] if isinstance(argmax, str) else list(argmax)
        if flops_per_item is not None:
            body["flopsPerItem"] = float(flops_per_item)
        return (yield from self.submit(body, [t["name"] for t in info.get("outputs", [])]))

    def train(
        self, x: Any, y: Any, layers: Sequence[int], rounds: int, local_steps: int, batch_size: int, init: Any, options: Mapping[str, Any], name: Optional[str]
    ) -> Op:
        """A training job for an MLP classifier (DiLoCo rounds): `options` are the API's other fields (camelCase)."""
        labels = np.asarray(y)
        if labels.ndim != 1 or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)) or np.any(labels < 0):
            raise ValueError("y must be a 1-D array of class ids (whole numbers from 0)")
        init = None if init is None else as_vector(init, "init")
        data = {"x": (yield from self.upload(x, "x")), "y": (yield from self.upload(labels, "y"))}
        model = {"type": "mlp", "layers": [int(w) for w in layers], "activation": "relu"}
        return (yield from self._train(model, data, init, rounds, local_steps, batch_size, options, name))

    def train_lm(
        self, tokens: Any, validation: Any, model: Mapping[str, int], rounds: int, local_steps: int, batch_size: int, init: Any, options: Mapping[str, Any], name: Optional[str]
    ) -> Op:
        """A training job for a transformer language model: `model` its vocab, context, layers,
        dModel and heads; tokens and validation are checked (1-D whole ids in [0, vocab)) before
        anything is sent."""
        vocab = int(model["vocab"])
        ids = as_token_ids(tokens, vocab, "tokens")
        valid = None if validation is None else as_token_ids(validation, vocab, "validation")
        init = None if init is None else as_vector(init, "init")
        data = {"tokens": (yield from self.upload(ids, "tokens"))}
        if valid is not None:
            data["validation"] = yield from self.upload(valid, "validation")
        spec = {"type": "transformer", **{k: int(v) for k, v in model.items()}}
        return (yield from self._train(spec, data, init, rounds, local_steps, batch_size, options, name))

    def _train(
        self, model: Dict[str, Any], data: Dict[str, str], init: Optional[np.ndarray], rounds: int, local_steps: int, batch_size: int, options: Mapping[str, Any], name: Optional[str]
    ) -> Op:
        body = self._common(
            {"kind": "train", "model": model, "data": data, "rounds": int(rounds), "localSteps": int(local_steps), "batchSize": int(batch_size)},
            options.get("replication"),
            name,
        )
        if init is not None:
            body["init"] = yield from self.upload(init, "init")
        body.update({k: v for k, v in options.items() if k != "replication" and v is not None})
        return (yield from self.submit(body))

    def status(self, job_id: str) -> Op:
        return (yield from self.get_json(f"/api/jobs/{quote(job_id, safe='')}"))

    def cancel(self, job_id: str) -> Op:
        r = yield from self.request(Call("POST", f"/api/jobs/{quote(job_id, safe='')}/cancel"))
        return r.json()

    def jobs(self) -> Op:
        return (yield from self.get_json("/api/jobs"))["jobs"]

    def cancel_quietly(self, job_ids: Sequence[str]) -> Op:
        """Cancels each job, passing over those that are already over or cannot be reached (``map``'s
        clean-up, which must not hide the error that stopped it)."""
        for job_id in job_ids:
            try:
                yield from self.cancel(job_id)
            except (ApiError, ConnectionError):
                pass

    def poll(self, look: Callable[[], Op], ready: Callable[[Any], bool], timeout: Optional[float], too_long: Callable[[Any], Exception]) -> Op:
        """Runs the operation `look` until `ready` holds for what it returned (and returns that),
        waiting 50 ms between looks, then 1.5 times longer each time up to ``poll_interval``; raises
        ``too_long(last seen)`` once `timeout` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = min(0.05, self.poll_interval)
        while True:
            seen = yield from look()
            if ready(seen):
                return seen
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise too_long(seen)
            yield Sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, self.poll_interval)

    def wait(self, job_id: str, timeout: Optional[float], on_status: Callable[[Dict[str, Any]], None]) -> Op:
        """Polls until the job is done or failed (returns its status) or `timeout` seconds pass."""

        def look() -> Op:
            status = yield from self.status(job_id)
            on_status(status)
            return status

        def too_long(status: Dict[str, Any]) -> Exception:
            done, total = progress_of(status)
            return TimeoutError(f"job {job_id} is still {status['state']} after {timeout} s ({done}/{total} work units done)")

        return (yield from self.poll(look, lambda status: status["state"] in TERMINAL, timeout, too_long))

    def first_ended(self, job_ids: Sequence[str], timeout: Optional[float]) -> Op:
        """Polls the jobs until one or more of them is done or failed: returns the ids of those."""

        def look() -> Op:
            ended = []
            for job_id in job_ids:
                if (yield from self.status(job_id))["state"] in TERMINAL:
                    ended.append(job_id)
            return ended

        return (yield from self.poll(look, bool, timeout, lambda _: no_job_finished(timeout, len(job_ids))))

    def result(self, spec: JobSpec, output: Optional[str] = None) -> Op:
        """The result of a finished job: an array, or for onnx jobs a dict of arrays by output name."""
        base = f"/api/jobs/{quote(spec.id, safe='')}"
        try:
            if output is not None:
                return from_npy((yield from self.request(Call("GET", f"{base}/outputs/{quote(output, safe='')}"))).content)
            if spec.kind != "onnx":
                return from_npy((yield from self.request(Call("GET", f"{base}/result"))).content)
            if spec.outputs is None:
                raise ValueError(
                    f"job {spec.id} is an onnx job re-attached without its output names (this coordinator's job status "
                    "does not list them): use grid.job(id, outputs=[...]) or job.result(output='<name>')"
                )
            out = {}
            for name in spec.outputs:
                out[name] = from_npy((yield from self.request(Call("GET", f"{base}/outputs/{quote(name, safe='')}"))).content)
            return out
        except NotReady as err:
            status = yield from self.status(spec.id)
            if status["state"] == "failed":
                raise JobFailed(err.code, f"job {spec.id} failed: {status.get('error')}", err.status, spec.id) from None
            raise


def bar_for(job_id: str, enabled: bool) -> Callable[[Optional[Dict[str, Any]]], None]:
    """A tqdm progress bar over a job's work units when tqdm is installed and `enabled`; else a no-op.
    Call it with each status, and with None to close it."""
    if not enabled:
        return lambda status: None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return lambda status: None
    bar = None

    def update(status: Optional[Dict[str, Any]]) -> None:
        nonlocal bar
        if status is None:
            if bar is not None:
                bar.close()
            return
        done, total = progress_of(status)
        if bar is None:
            bar = tqdm(total=total, desc=job_id, unit="unit")
        bar.total = total
        bar.n = done
        bar.set_postfix_str(status["state"], refresh=False)
        bar.refresh()

    return update

