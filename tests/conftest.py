"""Shared fixtures: real API server processes on SQLite and PostgreSQL.

Integration tests talk to a real `pocketkube apiserver` process over HTTP, the
way every component and kubectl will. The `backend` fixture runs each such
test once on embedded SQLite and once on PostgreSQL; PostgreSQL comes from
POCKETKUBE_TEST_PG_URL (tests/run.sh starts a throwaway server), and each
test gets a database of its own.

Tests that need something this machine lacks skip with the reason locally;
under POCKETKUBE_NO_SKIP=1 (CI) any such skip is turned into a failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest

NO_SKIP = os.environ.get("POCKETKUBE_NO_SKIP") == "1"
PG_URL = os.environ.get("POCKETKUBE_TEST_PG_URL")


def need(condition: bool, reason: str) -> None:
    """Skip with a reason locally; fail in CI, where nothing may skip."""
    if not condition:
        if NO_SKIP:
            pytest.fail(f"required in CI but missing: {reason}")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pg_database() -> tuple[str, callable]:
    """A fresh database on the test PostgreSQL server; returns (url, drop)."""
    import psycopg

    need(PG_URL is not None, "POCKETKUBE_TEST_PG_URL is not set (tests/run.sh starts a PostgreSQL server)")
    base = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    name = "pk_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = PG_URL.rpartition("/")
    url = f"{head}/{name}"

    def drop() -> None:
        try:
            with psycopg.connect(base, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass

    return url, drop


class ApiServer:
    """One real API server process."""

    def __init__(self, data_dir: str, storage: str | None = None, extra_args: list[str] | None = None,
                 port: int | None = None, token_file: str | None = None):
        self.data_dir = data_dir
        self.storage = storage
        self.extra_args = extra_args or []
        self.port = port or free_port()
        self.token_file = token_file
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(data_dir, f"apiserver-{self.port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ApiServer":
        args = [sys.executable, "-m", "deploy.cli", "apiserver", "--port", str(self.port),
                "--data-dir", self.data_dir, *self.extra_args]
        if self.storage:
            args += ["--storage", self.storage]
        if self.token_file:
            args += ["--token-auth-file", self.token_file]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apiserver exited with {self.proc.returncode}: {self.read_log()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"apiserver did not become ready: {self.read_log()[-2000:]}")

    def read_log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """Yields a storage URL (None = embedded SQLite in the data dir) per backend."""
    if request.param == "sqlite":
        yield None
        return
    url, drop = make_pg_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def server(backend, tmp_path):
    s = ApiServer(str(tmp_path), storage=backend).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture
def sqlite_server(tmp_path):
    s = ApiServer(str(tmp_path)).start()
    try:
        yield s
    finally:
        s.stop()


def which(binary: str) -> str | None:
    return shutil.which(binary)
