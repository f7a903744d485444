"""The real Apache Kafka broker for integration tests.

One broker per test session, started through `hotspot broker start` on a
temporary data directory and free ports, exactly as an operator would, and
stopped at the end. Tests that need their own broker (restarts, failures) use
`make_broker`.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import HOTSPOT, free_port


@dataclass
class Broker:
    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    env: dict[str, str] | None = None  # the `hotspot broker` commands' environment (default: this process's)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _cli(self, action: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [HOTSPOT, "broker", action, "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--controller-port", str(self.controller_port), *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> subprocess.CompletedProcess:
        return self._cli("start", "--heap", "384m")

    def stop(self) -> subprocess.CompletedProcess:
        return self._cli("stop")

    def status(self, *extra: str) -> subprocess.CompletedProcess:
        return self._cli("status", *extra, check=False)

    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "broker.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def make_broker(tmp_path):
    made: list[Broker] = []

    def make() -> Broker:
        b = Broker(tmp_path / f"kafka{len(made)}")
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()
