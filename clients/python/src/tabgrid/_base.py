"""The halves of ``Grid``/``AsyncGrid`` and ``Job``/``AsyncJob`` that do not depend on how I/O is
done: their state, and each method's work as an operation (a generator, see ``_core``) that the
concrete class hands to its driver, ``_run`` (``httpx.Client`` and ``time.sleep``, or
``httpx.AsyncClient`` and ``asyncio.sleep``). The concrete classes keep only their public
signatures, docstrings and the one line that runs the operation."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ._core import Core, JobSpec, Op, bar_for, progress_of


class JobBase:
    """A job's spec and the last status seen of it; the operations behind ``Job``'s and
    ``AsyncJob``'s methods."""

    #: The class's name in ``repr``.
    _name = "Job"

    def __init__(self, grid: Any, spec: JobSpec, status: Optional[Dict[str, Any]] = None) -> None:
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

    def _fetch_op(self) -> Op:
        """Fetches the job's status (and keeps it as the last seen)."""
        self._status = yield from self._grid._core.status(self.id)
        return self._status

    def _wait_op(self, timeout: Optional[float], progress: bool) -> Op:
        """Polls until the job is done or failed (keeping each status seen, and drawing the
        progress bar, closed however the wait ends); returns the job."""
        bar = bar_for(self.id, progress)

        def seen(status: Dict[str, Any]) -> None:
            self._status = status
            bar(status)

        try:
            yield from self._grid._core.wait(self.id, timeout, seen)
        finally:
            bar(None)
        return self

    def _result_op(self, timeout: Optional[float], progress: bool, wait: bool, output: Optional[str]) -> Op:
        if wait:
            yield from self._wait_op(timeout, progress)
        return (yield from self._grid._core.result(self._spec, output))

    def _cancel_op(self) -> Op:
        self._status = yield from self._grid._core.cancel(self.id)
        return self

    def __repr__(self) -> str:
        if self._status is None:
            return f"<tabgrid.{self._name} {self.id} {self.kind}>"
        done, total = progress_of(self._status)
        return f"<tabgrid.{self._name} {self.id} {self.kind} {self._status['state']} {done}/{total}>"


class GridBase:
    """The client's state (``_core``) and the operations behind ``Grid``'s and ``AsyncGrid``'s
    methods that make jobs (objects of ``_job``)."""

    _core: Core
    #: The class of the jobs this grid makes (``Job`` or ``AsyncJob``).
    _job: Any

    @property
    def url(self) -> str:
        return self._core.url

    def _submit_op(self, op: Op) -> Op:
        """Runs a job kind's operation (uploads, then the submission): returns the new job."""
        return self._job(self, (yield from op))

    def _attach_op(self, job_id: str, outputs: Optional[Sequence[str]]) -> Op:
        """Fetches a job submitted earlier: returns it, with its status."""
        status = yield from self._core.status(job_id)
        return self._job(self, JobSpec(status["id"], status["kind"], list(outputs) if outputs is not None else status.get("outputs")), status)

    def _list_op(self) -> Op:
        """Every job on the coordinator, with its status."""
        return [self._job(self, JobSpec(s["id"], s["kind"], s.get("outputs")), s) for s in (yield from self._core.jobs())]

    @staticmethod
    def _model(vocab: int, context: int, layers: int, d_model: int, heads: int) -> Dict[str, int]:
        """``train_lm``'s model keywords in the API's spelling."""
        return {"vocab": vocab, "context": context, "layers": layers, "dModel": d_model, "heads": heads}
