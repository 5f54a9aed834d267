"""Exceptions: every error the coordinator's API answers becomes an :class:`ApiError` (or one of its
subclasses) carrying the API's ``code``, ``message`` and HTTP ``status``."""

from __future__ import annotations

from typing import Optional


class ApiError(Exception):
    """An error answer from the coordinator: ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status} {self.code})"


class BadRequest(ApiError):
    """400 ``bad_request``: a malformed job, wrong shapes or dtypes, an unknown shard, a model that
    cannot run, inputs that do not match it. The message says what is wrong."""


class Unauthorized(ApiError):
    """401 ``unauthorized``: missing or wrong API token."""


class NotFound(ApiError):
    """404 ``not_found``: no such job, shard, output or route."""


class NotReady(ApiError):
    """409 ``not_ready``: a result asked for before the job is done, or after it failed."""


class JobFailed(NotReady):
    """The job failed (or was cancelled): it has no result. ``job_id`` names it; ``message`` says why."""

    def __init__(self, code: str, message: str, status: int, job_id: str) -> None:
        super().__init__(code, message, status)
        self.job_id = job_id


class Conflict(ApiError):
    """409 ``conflict``: e.g. cancelling a job that is already done or failed."""


class RateLimited(ApiError):
    """429 ``rate_limited``: over the token's per-minute request limit, still so after the client's
    own retries. ``retry_after`` is the wait the coordinator asked for, in seconds (or None)."""

    def __init__(self, code: str, message: str, status: int, retry_after: Optional[float] = None) -> None:
        super().__init__(code, message, status)
        self.retry_after = retry_after


_BY_CODE = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "not_found": NotFound,
    "not_ready": NotReady,
    "conflict": Conflict,
    "rate_limited": RateLimited,
}

_BY_STATUS = {400: BadRequest, 401: Unauthorized, 404: NotFound, 429: RateLimited}


def error_from(status: int, body: bytes, retry_after: Optional[float] = None) -> ApiError:
    """The exception for an error answer (any body: a proxy's HTML page becomes ``http_<status>``)."""
    import json

    code, message = f"http_{status}", body[:300].decode("utf-8", "replace").strip() or f"HTTP {status}"
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        pass
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, ApiError)
    if cls is RateLimited:
        return RateLimited(code, message, status, retry_after)
    return cls(code, message, status)
