"""The module's public face against real files in a temp dir, and the wheel's binary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import dhan_keeper
from conftest import eventually

IST = timezone(timedelta(hours=5, minutes=30))
SECRET = "eyJhbGciOiJIUzUxMiJ9.test-access-token.sig"


def write_token(path: Path, access=SECRET, expires_in=3600, **extra):
    exp = datetime.now(IST).replace(microsecond=0) + timedelta(seconds=expires_in)
    body = {"access_token": access, "expiry_time": exp.replace(tzinfo=None).isoformat(), **extra}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)  # atomic, like the keeper
    return exp


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("DHAN_KEEPER_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_finds_the_token_the_way_the_cli_does(workdir, monkeypatch):
    # ./dhan_config.json, token beside it by default.
    (workdir / "dhan_config.json").write_text(json.dumps({"client_id": "1000000001"}))
    exp = write_token(workdir / "dhan_token.json")
    t = dhan_keeper.load()
    assert t.access_token == SECRET
    assert t.expires_at == exp and t.expires_at.tzinfo is not None, "prototype's naive expiry_time is IST"
    assert 3500 < t.seconds_left <= 3600
    assert dhan_keeper.token() == SECRET
    # $DHAN_KEEPER_CONFIG elsewhere, token_file relative to that config's directory.
    other = workdir / "elsewhere"
    (other / "data").mkdir(parents=True)
    (other / "cfg.json").write_text(json.dumps({"client_id": "1000000001", "token_file": "data/tok.json"}))
    write_token(other / "data" / "tok.json", access="eyJ.other.token", client_id="1000000001", source="totp")
    monkeypatch.setenv("DHAN_KEEPER_CONFIG", str(other / "cfg.json"))
    assert dhan_keeper.token_path() == other / "data" / "tok.json"
    t = dhan_keeper.load()
    assert (t.access_token, t.client_id, t.source) == ("eyJ.other.token", "1000000001", "totp")
    # An explicit config beats the environment.
    assert dhan_keeper.token(workdir / "dhan_config.json") == SECRET


def test_rich_keys_win_and_repr_hides_the_token(workdir):
    path = workdir / "dhan_token.json"
    path.write_text(json.dumps({
        "access_token": SECRET,
        "expiry_time": "2099-01-01T09:00:00",
        "expires_at": "2099-01-01T09:00:00+05:30",
        "client_id": "1000000001",
        "obtained_at": "2098-12-31T09:00:00+05:30",
        "source": "renew",
    }))
    t = dhan_keeper.load(token_file=path, account="1000000001")
    assert t.expires_at == datetime(2099, 1, 1, 3, 30, tzinfo=timezone.utc)
    assert t.source == "renew" and t.obtained_at is not None
    assert SECRET not in repr(t) and SECRET not in str(t)


def test_no_valid_token_names_the_file_and_what_to_run(workdir):
    (workdir / "dhan_config.json").write_text("{}")
    with pytest.raises(dhan_keeper.NoValidToken) as e:
        dhan_keeper.token()
    msg = str(e.value)
    assert str((workdir / "dhan_token.json").resolve()) in msg
    assert "dhan-keeper run --config dhan_config.json" in msg and "dhan-keeper refresh" in msg

    write_token(workdir / "dhan_token.json", expires_in=-60)
    with pytest.raises(dhan_keeper.NoValidToken, match=r"dhan_token.json expired at .* IST; start the keeper") as e:
        dhan_keeper.token()
    assert SECRET not in str(e.value)
    assert dhan_keeper.load(allow_expired=True).expired

    write_token(workdir / "dhan_token.json", client_id="1000000002")
    with pytest.raises(dhan_keeper.NoValidToken, match="for client 1000000002, not 1000000001"):
        dhan_keeper.token(account="1000000001")

    (workdir / "dhan_token.json").write_text("{not json")
    with pytest.raises(dhan_keeper.NoValidToken, match="is not JSON"):
        dhan_keeper.token()


def test_watch_calls_back_once_per_new_token_and_stops(workdir):
    path = workdir / "dhan_token.json"
    write_token(path, access="eyJ.one")
    got = []

    def callback(t):
        got.append(t.access_token)

    w = dhan_keeper.watch(callback, token_file=path)
    eventually("the watcher to read the first token", lambda: w.token is not None)
    assert got == [], "the token in hand at start is not news"
    write_token(path, access="eyJ.two")
    eventually("the callback", lambda: got == ["eyJ.two"])
    # Rewritten with the same token: no call.
    write_token(path, access="eyJ.two")
    write_token(path, access="eyJ.three")
    eventually("the callback", lambda: got == ["eyJ.two", "eyJ.three"])
    w.stop()
    assert not w.running, "stop() ends the thread"


def test_watch_reports_the_first_token_when_there_was_none(workdir):
    path = workdir / "dhan_token.json"
    got = []
    with dhan_keeper.watch(lambda t: got.append(t.access_token), token_file=path) as w:
        assert w.token is None
        write_token(path, access="eyJ.first")
        eventually("the callback", lambda: got == ["eyJ.first"])


def test_times_with_nanoseconds_parse(workdir):
    path = workdir / "dhan_token.json"
    path.write_text(json.dumps({
        "access_token": SECRET,
        "expires_at": "2099-01-01T09:00:00.123456789+05:30",
        "obtained_at": "2098-12-31T09:00:00.5+05:30",
    }))
    t = dhan_keeper.load(token_file=path)
    assert t.expires_at.microsecond == 123456 and t.obtained_at is not None


def test_a_failing_callback_does_not_end_the_watch(workdir):
    path = workdir / "dhan_token.json"
    write_token(path, access="eyJ.one")
    got = []

    def callback(t):
        got.append(t.access_token)
        raise RuntimeError("user bug")

    with dhan_keeper.watch(callback, token_file=path, initial=True) as w:
        eventually("the initial call", lambda: got == ["eyJ.one"])
        write_token(path, access="eyJ.two")
        eventually("the next call", lambda: got == ["eyJ.one", "eyJ.two"])
        assert w.running


def test_the_wheel_puts_the_binary_on_path_and_python_m_forwards(tmp_path):
    binary = dhan_keeper.find_binary()
    assert Path(binary).parent == Path(sys.executable).parent, "installed in this environment's scripts dir"
    out = subprocess.run([sys.executable, "-m", "dhan_keeper", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("dhan-keeper "), out
    bad = subprocess.run([sys.executable, "-m", "dhan_keeper", "no-such-command"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "no-such-command" in bad.stderr
