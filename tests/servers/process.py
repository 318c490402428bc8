"""A server the tests run as a child process: stopped on exit, killed if it will not stop."""

from __future__ import annotations

import subprocess


class ServerProcess:
    process: subprocess.Popen
    stop_timeout = 5.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
