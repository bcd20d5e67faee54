"""A long-running Python program and the real keeper: the official `dhanhq` package keeps
working across rotations with no restart, and watchers hear of each new token promptly."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time

import pytest
from dhanhq import DhanContext, dhanhq

import dhan_keeper
from conftest import HTTP_TOKEN, eventually


def point_at(ctx, sim):
    # dhanhq talks to https://api.dhan.co/v2; the simulator serves the same paths on loopback.
    ctx.get_dhan_http().base_url = sim.url + "/v2"


def test_dhanhq_keeps_working_across_three_rotations(stack):
    sim, keeper = stack
    ctx = dhan_keeper.dhan_context(config=keeper.config)
    point_at(ctx, sim)
    dhan = dhanhq(ctx)
    http = ctx.get_dhan_http()
    issued_before = sim.state()["issued"]
    seen = [http.header["access-token"]]
    calls, rejected = 0, []
    deadline = time.monotonic() + 60
    while len(seen) < 4:  # the token at start and three new ones
        for call in (dhan.get_fund_limits, dhan.get_positions):
            reply = call()
            calls += 1
            if reply["status"] != "success":
                rejected.append(reply)
        if http.header["access-token"] != seen[-1]:
            seen.append(http.header["access-token"])
        assert time.monotonic() < deadline, f"only {len(seen) - 1} rotations in 60 s"
        time.sleep(0.25)  # pacing, as a strategy would: Dhan (and the simulator) allow 20 calls/s
    ctx.dhan_keeper_watch.stop()
    assert rejected == [], f"{len(rejected)} of {calls} calls were rejected: {rejected[:3]}"
    assert len(set(seen)) == 4
    assert sim.state()["issued"] >= issued_before + 3, "the simulator issued the new tokens"
    assert keeper.child.proc.poll() is None, "the keeper is still running"
    assert calls >= 20
    print(f"\n{calls} funds/positions calls across 3 rotations, 0 rejected")


def test_a_context_made_once_dies_at_the_first_rotation(stack):
    """The failure this package exists for, shown with the same parts: a token read once at start."""
    sim, keeper = stack
    first = dhan_keeper.load(config=keeper.config)
    ctx = DhanContext(first.client_id, first.access_token)
    point_at(ctx, sim)
    dhan = dhanhq(ctx)
    assert dhan.get_fund_limits()["status"] == "success"
    eventually("a rotation", lambda: dhan_keeper.token(config=keeper.config) != first.access_token)
    reply = eventually("Dhan to refuse the replaced token", lambda: (r := dhan.get_fund_limits())["status"] == "failure" and r)
    assert reply["remarks"]["error_code"], reply


def test_token_over_http_matches_the_file(stack):
    sim, keeper = stack
    via_file = dhan_keeper.load(config=keeper.config)
    via_http = dhan_keeper.load(url=keeper.url, bearer=HTTP_TOKEN)
    if via_http.access_token != via_file.access_token:  # a rotation fell in between
        via_file = dhan_keeper.load(config=keeper.config)
    assert via_http.access_token == via_file.access_token
    assert via_http.client_id == sim.client_id
    assert via_http.expires_at == via_file.expires_at
    # The bearer defaults to the config's http_token (a wrong one is refused, below).
    assert dhan_keeper.load(config=keeper.config, url=keeper.url).client_id == sim.client_id
    with pytest.raises(dhan_keeper.NoValidToken, match="refused the bearer"):
        dhan_keeper.token(url=keeper.url, bearer="wrong")


ROTATIONS = int(os.environ.get("DHAN_KEEPER_LATENCY_ROTATIONS", "20"))


def test_watchers_hold_each_new_token_promptly(stack):
    """Milliseconds from the keeper writing a new token file to a watcher's callback holding it,
    for the file watcher and the /events watcher, over ROTATIONS rotations."""
    sim, keeper = stack
    samples: dict[str, list[float]] = {"file": [], "events": []}
    tokens: dict[str, list[str]] = {"file": [], "events": []}
    lock = threading.Lock()

    def on_new(kind):
        def callback(t):
            now_ns = time.time_ns()
            try:
                st = os.stat(keeper.token_file)
                on_disk = json.loads(keeper.token_file.read_text())["access_token"]
            except (OSError, ValueError):
                return
            with lock:
                tokens[kind].append(t.access_token)
                if on_disk == t.access_token:
                    samples[kind].append((now_ns - st.st_mtime_ns) / 1e6)

        return callback

    watches = [
        dhan_keeper.watch(on_new("file"), config=keeper.config),
        dhan_keeper.watch(on_new("events"), url=keeper.url, bearer=HTTP_TOKEN),
    ]
    try:
        eventually(
            f"{ROTATIONS} rotations seen by both watchers",
            lambda: all(len(v) >= ROTATIONS for v in tokens.values()),
            limit=ROTATIONS * 4 + 20,
        )
    finally:
        for w in watches:
            w.stop()
        assert not any(w.running for w in watches), "stop() ends the watcher threads"
    report = {}
    for kind, ms in samples.items():
        assert len(set(tokens[kind])) == len(tokens[kind]), f"{kind}: each new token once"
        assert len(ms) >= ROTATIONS - 2, f"{kind}: {len(ms)} usable samples"
        ms = ms[:ROTATIONS]
        report[kind] = {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1)}
        assert max(ms) < 2000, f"{kind} watcher took {max(ms):.0f} ms"
    print(f"\nwatch latency after a rotation: {json.dumps(report)}")
    out = os.environ.get("DHAN_KEEPER_LATENCY_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(report, f, indent=2)


def test_a_refused_token_is_reread_once_and_the_call_retried(stack):
    """With the watcher stopped, the context still holds a token Dhan has since refused: the
    first call after the rotation is refused (400 DH-906 "Invalid Token", as live Dhan answers),
    re-reads the token and succeeds."""
    sim, keeper = stack
    ctx = dhan_keeper.dhan_context(config=keeper.config)
    ctx.dhan_keeper_watch.stop()
    point_at(ctx, sim)
    dhan = dhanhq(ctx)
    held = ctx.get_dhan_http().header["access-token"]
    eventually("a rotation", lambda: dhan_keeper.token(config=keeper.config) != held)
    # The old token dies when Dhan issues the next one, or at its expiry at the latest.
    stale = DhanContext(sim.client_id, held)
    point_at(stale, sim)
    eventually("Dhan to refuse the held token", lambda: dhanhq(stale).get_fund_limits()["status"] == "failure")
    reply = dhan.get_fund_limits()
    assert reply["status"] == "success", reply
    assert ctx.get_dhan_http().header["access-token"] != held, "the new token was swapped in"
