"""A throwaway Argilla server on 127.0.0.1 for the export tests: osmem (in-memory OpenSearch), Redis and
argilla-server 2.8 on SQLite, each a subprocess. argilla-server lives in its own venv (.venv-argilla, made by
.ci/install-argilla.sh) because its pins clash with prefclean's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

try:
    from .osmem_scripts import ScriptProxy
except ImportError:  # run as a script, or imported as a top-level module (tests put tests/ on sys.path)
    from osmem_scripts import ScriptProxy

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-argilla"
OWNER = {"username": "owner", "password": "owner-password-1", "api_key": "owner.apikey.for.tests"}


def missing_requirement() -> str | None:
    """Why the stack cannot start here (for pytest.skip), or None."""
    if not (VENV / "bin" / "python").exists():
        return f"{VENV.name} is missing: run `bash .ci/install-argilla.sh`"
    if not osmem_binary().exists():
        return f"osmem-server is not installed in {VENV.name}: run `bash .ci/install-argilla.sh`"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed: `apt-get install redis-server`"
    return None


def osmem_binary() -> Path:
    found = sorted(VENV.glob("lib/python*/site-packages/osmem_server/bin/osmem-server"))
    return found[0] if found else VENV / "missing-osmem-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ArgillaStack:
    """The running processes; `api_url` and `api_key` are what a client needs."""

    workdir: Path
    api_url: str = ""
    api_key: str = OWNER["api_key"]
    procs: list = field(default_factory=list)
    search_proxy: ScriptProxy | None = None

    def start(self) -> "ArgillaStack":
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # osmem prints one JSON line with its URL once it listens; it exits when our stdin pipe closes.
        osmem_log = self.workdir / "osmem.log"
        osmem = self._spawn("osmem", [str(osmem_binary()), "--addr", "127.0.0.1:0", "--no-ja",
                                      "--parent-pid", str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, log=osmem_log)
        line = osmem.stdout.readline()
        try:
            osmem_url = json.loads(line)["url"]
        except (ValueError, KeyError):
            raise RuntimeError(f"osmem did not report its URL: {line!r} {osmem_log.read_text()[-2000:]}") from None
        # osmem runs no scripts, and argilla-server indexes each annotator's response with one: the proxy does them
        self.search_proxy = ScriptProxy(osmem_url).start()
        search_url = self.search_proxy.url

        redis_port = free_port()
        redis_log = self.workdir / "redis.log"
        redis = self._spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.workdir)], log=redis_log)
        wait_until(lambda: _redis_ping(redis_port), "redis-server", redis, redis_log)

        env = {**os.environ,
               "ARGILLA_HOME_PATH": str(self.workdir / "home"),
               "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{self.workdir / 'argilla.db'}",
               "ARGILLA_SEARCH_ENGINE": "opensearch",
               "ARGILLA_ELASTICSEARCH": search_url,
               "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
               "ARGILLA_ENABLE_TELEMETRY": "0",
               "HF_HUB_OFFLINE": "1"}
        for var in ("ARGILLA_API_URL", "ARGILLA_API_KEY", "VIRTUAL_ENV", "PYTHONPATH"):
            env.pop(var, None)
        python = str(VENV / "bin" / "python")
        self._run([python, "-m", "argilla_server", "database", "migrate"], env)
        self._run([python, "-m", "argilla_server", "database", "users", "create", "--first-name", "Owner",
                   "--username", OWNER["username"], "--password", OWNER["password"], "--role", "owner",
                   "--api-key", OWNER["api_key"]], env)
        port = free_port()
        server_log = self.workdir / "argilla.log"
        server = self._spawn("argilla-server", [python, "-m", "argilla_server", "start", "--host", "127.0.0.1",
                                                "--port", str(port), "--no-access-log"], env=env, log=server_log)
        self.api_url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{self.api_url}/api/v1/status"), "argilla-server", server, server_log)
        self.startup_s = time.monotonic() - started

    def _spawn(self, name, args, log: Path, env=None, stdin=subprocess.DEVNULL, stdout=None):
        handle = open(log, "w")
        proc = subprocess.Popen(args, env=env, stdin=stdin, stdout=stdout or handle, stderr=handle,
                                text=True, cwd=self.workdir)
        self.procs.append((name, proc, handle))
        return proc

    def _run(self, args, env) -> None:
        done = subprocess.run(args, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[1:5])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")

    def stop(self) -> None:
        proxy, self.search_proxy = self.search_proxy, None
        for name, proc, handle in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream:
                    stream.close()
            handle.close()
        self.procs.clear()
        if proxy is not None:
            proxy.stop()


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


if __name__ == "__main__":  # manual use: python tests/servers/argilla_stack.py [DIR]; stop with Ctrl-C or SIGTERM
    import signal
    import tempfile

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = ArgillaStack(Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())).start()
    print(f"ARGILLA_API_URL={stack.api_url} ARGILLA_API_KEY={stack.api_key} (up in {stack.startup_s:.1f}s)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stack.stop()
