"""Every error class, raised by a real bad request to a real coordinator; and the client's own
retries (429 with Retry-After, failed and reset connections)."""

from __future__ import annotations

import socket
import struct
import threading

import httpx
import numpy as np
import pytest

import tabgrid
import tabgrid.grid
from conftest import Coordinator


def test_wrong_token_is_unauthorized(coordinator):
    with tabgrid.Grid(coordinator.url, "tg_not-the-token") as g:
        with pytest.raises(tabgrid.Unauthorized) as e:
            g.matmul(np.ones((2, 2)), np.ones((2, 2)))
    assert (e.value.status, e.value.code) == (401, "unauthorized")
    assert "API token" in e.value.message
    assert isinstance(e.value, tabgrid.ApiError)


def test_no_token_at_all_is_refused_before_any_request(monkeypatch):
    monkeypatch.delenv("TABGRID_TOKEN", raising=False)
    with pytest.raises(ValueError, match="TABGRID_TOKEN"):
        tabgrid.Grid("http://127.0.0.1:9")


def test_token_from_the_environment(coordinator, workers, monkeypatch):
    monkeypatch.setenv("TABGRID_TOKEN", coordinator.token)
    monkeypatch.setenv("TABGRID_URL", coordinator.url)
    with tabgrid.Grid() as g:
        assert isinstance(g.jobs(), list)


@pytest.mark.parametrize(
    "submit, words",
    [
        (lambda g: g.matmul(np.ones((3, 4)), np.ones((5, 2))), "inner dimensions differ"),
        (lambda g: g.attention(*(np.ones((1, 8, 32)) for _ in range(3))), "64"),
        (lambda g: g.matmul(np.ones((2, 2)), np.ones((2, 2)), replication=9), "replication"),
        (lambda g: g.onnx(b"this is not an onnx model", {"x": np.ones((2, 16))}), "not a valid ONNX model"),
    ],
    ids=["inner-dimensions", "attention-head-dim", "replication", "not-a-model"],
)
def test_bad_requests(grid, submit, words):
    with pytest.raises(tabgrid.BadRequest) as e:
        submit(grid)
    assert (e.value.status, e.value.code) == (400, "bad_request")
    assert words in e.value.message


def test_unknown_job_is_not_found(grid):
    with pytest.raises(tabgrid.NotFound) as e:
        grid.job("j_nosuchjob")
    assert (e.value.status, e.value.code) == (404, "not_found")


def test_unfinished_then_cancelled_job(grid):
    # Five replicas that must agree, and only two workers: this job cannot finish.
    job = grid.matmul(np.ones((4, 4)), np.eye(4), replication=5, adaptive=False)
    with pytest.raises(tabgrid.NotReady) as e:
        job.result(wait=False)
    assert (e.value.status, e.value.code) == (409, "not_ready") and not isinstance(e.value, tabgrid.JobFailed)
    with pytest.raises(TimeoutError, match=job.id):
        job.wait(timeout=0.3, progress=False)
    assert job.cancel().state == "failed" and job.error == "cancelled"
    with pytest.raises(tabgrid.JobFailed) as failed:
        job.result()
    assert isinstance(failed.value, tabgrid.NotReady) and failed.value.status == 409
    assert failed.value.job_id == job.id and "cancelled" in failed.value.message
    with pytest.raises(tabgrid.Conflict) as conflict:
        job.cancel()
    assert (conflict.value.status, conflict.value.code) == (409, "conflict")


@pytest.fixture(scope="module")
def limited():
    """A second coordinator allowing 5 requests a minute per token."""
    c = Coordinator({"TABGRID_RATE_LIMIT": "5"})
    yield c
    c.stop()


def test_rate_limited_after_the_clients_own_retries(limited, monkeypatch):
    waits = []
    monkeypatch.setattr(tabgrid.grid, "_sleep", waits.append)
    with tabgrid.Grid(limited.url, limited.token, retries=2) as g:
        with pytest.raises(tabgrid.RateLimited) as e:
            for _ in range(10):
                g.jobs()
    assert (e.value.status, e.value.code) == (429, "rate_limited")
    assert 0 < e.value.retry_after <= 60
    # The two retries waited as long as the coordinator's Retry-After said.
    assert len(waits) == 2 and all(0 < w <= 60 for w in waits)
    assert waits[-1] == e.value.retry_after


def grid_on(handler, monkeypatch, **kw):
    waits = []
    monkeypatch.setattr(tabgrid.grid, "_sleep", waits.append)
    return tabgrid.Grid("http://grid.test", "t", transport=httpx.MockTransport(handler), **kw), waits


def test_429_waits_for_retry_after_then_succeeds(monkeypatch):
    answers = [
        httpx.Response(429, headers={"retry-after": "2"}, json={"error": {"code": "rate_limited", "message": "slow down"}}),
        httpx.Response(429, headers={"retry-after": "1"}, json={"error": {"code": "rate_limited", "message": "slow down"}}),
        httpx.Response(200, json={"jobs": []}),
    ]
    g, waits = grid_on(lambda request: answers.pop(0), monkeypatch)
    assert g.jobs() == []
    assert waits == [2.0, 1.0]


def test_reads_retry_on_broken_connections_but_a_job_is_never_sent_twice(monkeypatch):
    sent = []

    def handler(request):
        sent.append(request.method + " " + request.url.path)
        if request.url.path == "/api/jobs" and request.method == "GET" and len(sent) < 3:
            raise httpx.ReadError("connection reset by peer")
        if request.method == "POST" and request.url.path == "/api/jobs":
            raise httpx.RemoteProtocolError("server disconnected without sending a response")
        if request.method == "HEAD":
            return httpx.Response(200)
        return httpx.Response(200, json={"jobs": []})

    g, waits = grid_on(handler, monkeypatch)
    assert g.jobs() == [] and len(waits) == 2
    sent.clear()
    with pytest.raises(ConnectionError, match="may or may not have been submitted"):
        g.matmul(np.ones((2, 2)), np.ones((2, 2)))
    assert sent.count("POST /api/jobs") == 1


def test_a_submission_retries_when_the_connection_failed_before_sending(monkeypatch):
    tries = []

    def handler(request):
        if request.method == "HEAD":
            return httpx.Response(200)
        tries.append(request.url.path)
        if len(tries) < 3:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(201, json={"id": "j_x", "workUnits": 1})

    g, waits = grid_on(handler, monkeypatch)
    assert g.matmul(np.ones((2, 2)), np.ones((2, 2))).id == "j_x"
    assert tries == ["/api/jobs"] * 3 and len(waits) == 2


def test_a_real_connection_reset_is_retried(monkeypatch):
    """A loopback server that resets the first connection (RST) and answers the second."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    body = b'{"jobs": []}'

    def serve():
        first, _ = server.accept()
        first.recv(65536)
        first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()  # RST
        second, _ = server.accept()
        second.recv(65536)
        second.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        second.close()

    threading.Thread(target=serve, daemon=True).start()
    waits = []
    monkeypatch.setattr(tabgrid.grid, "_sleep", waits.append)
    with tabgrid.Grid(f"http://127.0.0.1:{server.getsockname()[1]}", "t", retries=1) as g:
        assert g.jobs() == []
    assert len(waits) == 1
    server.close()


def test_an_unreachable_coordinator_raises_connection_error(monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    waits = []
    monkeypatch.setattr(tabgrid.grid, "_sleep", waits.append)
    with tabgrid.Grid(f"http://127.0.0.1:{port}", "t", retries=2) as g:
        with pytest.raises(ConnectionError, match="failed"):
            g.jobs()
    assert len(waits) == 2
