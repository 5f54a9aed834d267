"""A real coordinator (`coordinator/cli.ts start`, as `npm start` runs it) on a free loopback port with
a temporary data directory, and real Node workers that compute (harness.ts), for the whole session."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parents[2]
HARNESS = TESTS / "harness.ts"
NODE = shutil.which("node") or "node"

sys.path.insert(0, str(TESTS.parent / "src"))


class Proc:
    """A child process whose stdout lines are read by a thread, so tests can wait for a line."""

    def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None, stdin: bool = False) -> None:
        self.args = args
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.log: List[str] = []
        self.p = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout
        for line in self.p.stdout:
            self.log.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 60) -> re.Match:
        """The first line (from now on) matching `pattern`."""
        rx = re.compile(pattern)
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"{self.args[2:5]}: no line matching {pattern!r} in {timeout} s; output:\n" + "\n".join(self.log[-40:]))
            m = rx.search(line)
            if m:
                return m

    def send(self, line: str) -> None:
        assert self.p.stdin
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
                self.p.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)


def tsx(*args: str) -> List[str]:
    return [NODE, "--import", "tsx", *args]


class Coordinator:
    def __init__(self, env: Optional[Dict[str, str]] = None) -> None:
        self.data = tempfile.mkdtemp(prefix="tabgrid-pytest-")
        env = {"TABGRID_API_TOKEN": "", "TABGRID_DB": "", **(env or {})}
        self.proc = Proc(tsx("coordinator/cli.ts", "start", "--port", "0", "--host", "127.0.0.1", "--data", self.data), env)
        port = self.proc.expect(r"listening on http://localhost:(\d+)", timeout=120).group(1)
        self.url = f"http://127.0.0.1:{port}"
        self.token = self.proc.expect(r"API token:\s+(\S+)").group(1)

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.data, ignore_errors=True)


class Workers:
    """Sim workers (harness.ts): `stop()` disconnects them, `start()` connects fresh ones."""

    def __init__(self, url: str, count: int = 2) -> None:
        self.proc = Proc(tsx(str(HARNESS), "workers", "--url", url, "--count", str(count)), stdin=True)
        self.proc.expect(r"^ready \d+")

    def stop(self) -> None:
        self.proc.send("stop")
        self.proc.expect(r"^stop ok")

    def start(self) -> None:
        self.proc.send("start")
        self.proc.expect(r"^start ok")

    def close(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="session")
def coordinator():
    c = Coordinator()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def workers(coordinator):
    w = Workers(coordinator.url, 2)
    yield w
    w.close()


@pytest.fixture()
def grid(coordinator, workers):
    import tabgrid

    with tabgrid.Grid(coordinator.url, coordinator.token, poll_interval=0.1) as g:
        yield g


@pytest.fixture(scope="session")
def node_side(tmp_path_factory):
    """Runs harness.ts commands (test models, onnxruntime-node references)."""
    work = tmp_path_factory.mktemp("node-side")

    def run(*args: str) -> None:
        subprocess.run(tsx(str(HARNESS), *args), cwd=ROOT, check=True, timeout=120)

    run.dir = work  # type: ignore[attr-defined]
    return run
