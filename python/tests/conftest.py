"""Real parts for the Python tests: the Dhan simulator and `dhan-keeper run` as child processes
on 127.0.0.1, a real config and token file in a temp dir. No mocks.

`DHAN_SIM_BIN` names the simulator binary (python/tests/run.sh builds it); the keeper is the
`dhan-keeper` the installed wheel put on this environment's PATH.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import dhan_keeper

HTTP_TOKEN = "pytest-http-token-6b1d0f3e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(what, check, limit=20.0):
    """Polls `check` every 10 ms until it returns something truthy; fails after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.01)


class Child:
    """A child process whose output is collected (and shown when a test fails)."""

    def __init__(self, name, argv, **kwargs):
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, **kwargs
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)
        return self.proc.returncode


def sim_binary() -> str:
    path = os.environ.get("DHAN_SIM_BIN")
    if not path:
        root = Path(__file__).resolve().parents[2]
        target = Path(os.environ.get("CARGO_TARGET_DIR", root / "target"))
        path = str(target / "debug" / "dhan-sim")
    if not Path(path).is_file():
        pytest.fail(f"the simulator binary {path} is missing: run `cargo build -p dhan-sim` or set DHAN_SIM_BIN")
    return path


class Sim:
    """`dhan-sim PORT LIFETIME COOLDOWN`, with the credentials it prints."""

    def __init__(self, lifetime_secs: int):
        self.child = Child("dhan-sim", [sim_binary(), "0", str(lifetime_secs), "0"])
        text = eventually("the simulator's banner", lambda: "totp_secret" in self.child.output and self.child.output)
        self.url = re.search(r"listening on (\S+)", text).group(1).rstrip("/")
        self.client_id = re.search(r"client_id\s+(\S+)", text).group(1)
        self.pin = re.search(r"pin\s+(\S+)", text).group(1)
        self.totp_secret = re.search(r"totp_secret\s+(\S+)", text).group(1)
        self.api_key = re.search(r"api_key\s+(\S+)", text).group(1)
        self.api_secret = re.search(r"api_secret\s+(\S+)", text).group(1)

    def state(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + "/__sim/state", timeout=5) as r:
            return json.loads(r.read())


class Keeper:
    """The real `dhan-keeper run` (from the wheel) with seconds-long timings."""

    def __init__(self, sim: Sim, workdir: Path, refresh_before: str):
        self.dir = workdir
        self.port = free_port()
        self.config = workdir / "dhan_config.json"
        cfg = {
            "client_id": sim.client_id,
            "api_key": sim.api_key,
            "api_secret": sim.api_secret,
            "totp_secret": sim.totp_secret,
            "pin": sim.pin,
            "dhan_auth_url": sim.url,
            "dhan_api_url": sim.url,
            "http_listen": f"127.0.0.1:{self.port}",
            "http_token": HTTP_TOKEN,
            "token_file": "tokens/dhan_token.json",
            "market_hours": "off",
            "refresh_before": refresh_before,
            "alert_before": "2s",
            "final_alert_before": "1s",
            "mint_cooldown": "100ms",
            "retry_min": "200ms",
            "retry_max": "1s",
            "verify_every": "1s",
        }
        (workdir / "tokens").mkdir()
        self.config.write_text(json.dumps(cfg, indent=2))
        self.config.chmod(0o600)
        self.token_file = workdir / "tokens" / "dhan_token.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DHAN_KEEPER_")}
        env["RUST_LOG"] = "warn,dhan_keeper=info"
        binary = dhan_keeper.find_binary()
        self.child = Child("dhan-keeper", [binary, "run", "--config", str(self.config)], cwd=workdir, env=env)
        eventually("the first token file", lambda: self.token_file.exists(), limit=30)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        return self.child.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One simulator (6 s tokens) and one keeper rotating every ~2 s, shared by a test module."""
    sim = Sim(lifetime_secs=6)
    keeper = None
    try:
        keeper = Keeper(sim, tmp_path_factory.mktemp("keeper"), refresh_before="4s")
        yield sim, keeper
    finally:
        code = keeper.stop() if keeper else None
        sim.child.stop()
        if keeper is not None:
            sys.stderr.write(f"--- dhan-keeper output ---\n{keeper.child.output}\n")
            assert code == 0, f"dhan-keeper exited {code}"
