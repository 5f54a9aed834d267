"""What ``Grid.map`` and ``AsyncGrid.map`` share: which job call each batch becomes, how many jobs
may be unfinished at once, and the order in which finished results are given out. Only how the
unfinished jobs are watched is each driver's own (the synchronous map polls their statuses, the
asyncio one awaits each job's result in a task, so uploads and polls overlap)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Tuple

from ._core import Result

KINDS = ("matmul", "attention", "onnx")


def kind_name(kind: Any) -> str:
    """A job kind for ``map``: its name, or the client's method for it (``grid.matmul``)."""
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", None)
    if name not in KINDS:
        raise ValueError(f"unknown job kind {kind!r}: use one of {', '.join(KINDS)}")
    return name


def call_for_batch(fn: Callable[..., Any], kind: str, batch: Any, options: Mapping[str, Any]) -> Any:
    """How ``map`` submits one batch: a tuple is the positional arguments (``(a, b)``), a dict the
    keyword arguments, anything else the one argument; for ``onnx`` a non-tuple batch is the inputs
    (a dict by input name, or one array) and the model comes from ``map``'s ``model=``."""
    if isinstance(batch, tuple):
        return fn(*batch, **options)
    if kind == "onnx":
        if "model" not in options:
            raise TypeError("map('onnx', batches, model=...) needs the model, or batches of (model, inputs)")
        return fn(inputs=batch, **options)
    if isinstance(batch, Mapping):
        return fn(**batch, **options)
    return fn(batch, **options)


class MapPlan:
    """One ``map`` call's batches, numbered in the order they come, and its finished results.
    Made when ``map`` is called, so a wrong kind or ``max_in_flight`` raises there, not at the
    first ``next``."""

    def __init__(self, kind: Any, batches: Iterable[Any], ordered: bool, max_in_flight: int, options: Dict[str, Any]) -> None:
        self.kind = kind_name(kind)
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._batches = iter(batches)
        self._exhausted = False
        self._ordered = ordered
        self._max_in_flight = max_in_flight
        self._options = options
        self._submitted = 0
        self._finished: Dict[int, Result] = {}
        self._next_out = 0

    def submit(self, grid: Any, in_flight: int) -> Iterator[Tuple[int, Any]]:
        """Submits the next batches, one at a time, while fewer than ``max_in_flight`` of the jobs
        are unfinished: yields each batch's number and what ``grid``'s job method returned (a
        ``Job``; for ``AsyncGrid`` the coroutine that submits an ``AsyncJob``)."""
        fn = getattr(grid, self.kind)
        while not self._exhausted and in_flight < self._max_in_flight:
            try:
                batch = next(self._batches)
            except StopIteration:
                self._exhausted = True  # (an iterator need not keep raising StopIteration)
                return
            i, self._submitted, in_flight = self._submitted, self._submitted + 1, in_flight + 1
            yield i, call_for_batch(fn, self.kind, batch, self._options)

    def release(self, i: int, result: Result) -> List[Result]:
        """What to give out now that batch `i`'s result has come: that result, or with ``ordered``
        every result that is next in batch order (none while an earlier batch is unfinished)."""
        if not self._ordered:
            return [result]
        self._finished[i] = result
        ready = []
        while self._next_out in self._finished:
            ready.append(self._finished.pop(self._next_out))
            self._next_out += 1
        return ready
