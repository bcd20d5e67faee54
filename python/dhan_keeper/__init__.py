"""The trading program's side of dhan-keeper: always the current Dhan access token.

A long-running program that reads the token once at start dies the morning after with a
token that the keeper has since replaced. This module reads the keeper's token file (or its
loopback ``/token``) whenever asked, tells you about every new token (``watch``), and gives
``dhanhq`` a context whose token is swapped in place (``dhan_context``)::

    import dhan_keeper
    from dhanhq import dhanhq

    dhan = dhanhq(dhan_keeper.dhan_context())   # keeps working across rotations
    print(dhan.get_fund_limits())

    token = dhan_keeper.token()                  # a cron job: the current valid token

It finds the files the way the ``dhan-keeper`` CLI does: the ``config`` argument, else
``$DHAN_KEEPER_CONFIG``, else ``./dhan_config.json``; the token file is the config's
``token_file`` (relative to the config's directory, default ``dhan_token.json`` beside it),
or ``$DHAN_KEEPER_TOKEN_FILE``. No third-party packages are needed; ``dhan_context`` needs
``dhanhq``.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from dhan_keeper._find import BinaryNotFound, find_binary

__all__ = [
    "BinaryNotFound",
    "NoValidToken",
    "Token",
    "Watch",
    "config_path",
    "dhan_context",
    "find_binary",
    "load",
    "token",
    "token_path",
    "watch",
]

log = logging.getLogger("dhan_keeper")

IST = timezone(timedelta(hours=5, minutes=30), "IST")


class NoValidToken(Exception):
    """There is no token, or it has expired, or it is not for the expected account.

    The message names the file (or URL) and what to run.
    """


@dataclass(frozen=True)
class Token:
    """An access token and what the keeper knows about it. ``repr`` never shows the token."""

    access_token: str = field(repr=False)
    expires_at: datetime
    client_id: Optional[str] = None
    source: Optional[str] = None
    obtained_at: Optional[datetime] = None
    #: Where it was read from (a path or a URL).
    origin: str = ""

    @property
    def seconds_left(self) -> float:
        """Seconds until it expires (negative once expired)."""
        return (self.expires_at - datetime.now(timezone.utc)).total_seconds()

    @property
    def expired(self) -> bool:
        """Whether it has expired."""
        return self.seconds_left <= 0


# --- finding the files -------------------------------------------------------------------------


def config_path(config: "str | os.PathLike[str] | None" = None) -> Path:
    """The config file the CLI would use: ``config``, ``$DHAN_KEEPER_CONFIG``, ``./dhan_config.json``."""
    if config:
        return Path(config)
    env = os.environ.get("DHAN_KEEPER_CONFIG")
    return Path(env) if env else Path("dhan_config.json")


def _read_config(path: Path) -> Optional[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise NoValidToken(f"cannot read the dhan-keeper config {path}: {e}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise NoValidToken(f"the dhan-keeper config {path} is not valid JSON ({e}); check it with `dhan-keeper check --config {path}`") from None
    if not isinstance(data, dict):
        raise NoValidToken(f"the dhan-keeper config {path} must be a JSON object")
    return data


def token_path(config: "str | os.PathLike[str] | None" = None) -> Path:
    """The token file the keeper writes, resolved like the CLI resolves it."""
    cfg_path = config_path(config)
    data = _read_config(cfg_path)
    base = (cfg_path.parent if str(cfg_path.parent) else Path(".")) if data is not None else Path(".")
    name = os.environ.get("DHAN_KEEPER_TOKEN_FILE") or (data or {}).get("token_file") or "dhan_token.json"
    return base / name


def _config_value(config: "str | os.PathLike[str] | None", key: str) -> Optional[str]:
    """A config value with the CLI's env override and ``*_file`` indirection."""
    env = os.environ.get("DHAN_KEEPER_" + key.upper())
    if env:
        return env
    env_file = os.environ.get("DHAN_KEEPER_" + key.upper() + "_FILE")
    data = _read_config(config_path(config)) or {}
    file = env_file or data.get(key + "_file")
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise NoValidToken(f"cannot read {key}_file {file}: {e}") from None
    value = data.get(key)
    return str(value) if value is not None else None


# --- reading a token ---------------------------------------------------------------------------


def _parse_time(value: Any) -> Optional[datetime]:
    if not isinstance(value, str) or not value:
        return None
    # Python 3.10's fromisoformat takes exactly 3 or 6 fractional digits; Rust writes 1 to 9.
    value = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "00000")[:6], value.strip().replace("Z", "+00:00"))
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive times on Dhan's wire (and the prototype's `expiry_time`) are IST.
    return t if t.tzinfo else t.replace(tzinfo=IST)


def _jwt_exp(access_token: str) -> Optional[datetime]:
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return datetime.fromtimestamp(int(claims["exp"]), timezone.utc)
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def _token_from(data: Any, origin: str) -> Token:
    if not isinstance(data, dict):
        raise NoValidToken(f"{origin} does not hold a token (expected a JSON object)")
    access = data.get("access_token")
    if not isinstance(access, str) or not access.strip():
        raise NoValidToken(f"{origin} has no access_token")
    expires = _parse_time(data.get("expires_at")) or _parse_time(data.get("expiry_time")) or _jwt_exp(access)
    if expires is None:
        raise NoValidToken(f"{origin} has no readable expiry_time")
    return Token(
        access_token=access,
        expires_at=expires.astimezone(IST),
        client_id=data.get("client_id"),
        source=data.get("source"),
        obtained_at=_parse_time(data.get("obtained_at")),
        origin=origin,
    )


def _fix(config: "str | os.PathLike[str] | None") -> str:
    cfg = config_path(config)
    return (
        f"start the keeper (`dhan-keeper run --config {cfg}`, or its service), "
        f"or get a token now with `dhan-keeper refresh --config {cfg}`"
    )


def _read_file(path: Path, config: "str | os.PathLike[str] | None") -> Token:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NoValidToken(f"no token file at {path.resolve()}; {_fix(config)}") from None
    except OSError as e:
        raise NoValidToken(f"cannot read the token file {path}: {e}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise NoValidToken(f"the token file {path} is not JSON; {_fix(config)}") from None
    return _token_from(data, str(path))


def _get(url: str, bearer: Optional[str], timeout: float = 10.0) -> Any:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        conn.request("GET", parts.path or "/", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except OSError as e:
        raise NoValidToken(f"cannot reach the keeper at {url}: {e}; is `dhan-keeper run` running?") from None
    finally:
        conn.close()
    if resp.status == 401:
        raise NoValidToken(f"{url} refused the bearer token; pass the config's http_token as bearer=")
    if resp.status == 404:
        raise NoValidToken(f"{url} is disabled: set http_token in the keeper's config")
    if resp.status == 503:
        raise NoValidToken(f"the keeper at {url} has no valid token right now; see `dhan-keeper status`")
    if resp.status != 200:
        raise NoValidToken(f"{url} answered HTTP {resp.status}")
    try:
        return json.loads(body)
    except ValueError:
        raise NoValidToken(f"{url} did not answer JSON") from None


def _base_url(url: str) -> str:
    url = url.rstrip("/")
    for suffix in ("/token", "/events"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if "://" not in url:
        url = "http://" + url
    return url


def load(
    config: "str | os.PathLike[str] | None" = None,
    account: Optional[str] = None,
    url: Optional[str] = None,
    bearer: Optional[str] = None,
    *,
    token_file: "str | os.PathLike[str] | None" = None,
    allow_expired: bool = False,
) -> Token:
    """The current token with its expiry, client id and source.

    From the token file (found like the CLI finds it; or ``token_file``), or from a keeper's
    loopback endpoint when ``url`` is given (``bearer`` defaults to the config's
    ``http_token``). ``account`` is the client id the token must belong to. Raises
    :class:`NoValidToken` when there is none, it has expired, or it is someone else's.
    """
    if url:
        base = _base_url(url)
        if bearer is None:
            bearer = _config_value(config, "http_token")
        t = _token_from(_get(base + "/token", bearer), base + "/token")
    else:
        t = _read_file(Path(token_file) if token_file else token_path(config), config)
    if account is not None and t.client_id is not None and str(account) != t.client_id:
        raise NoValidToken(
            f"{t.origin} holds a token for client {t.client_id}, not {account}; "
            "point config= at that account's dhan_config.json"
        )
    if t.expired and not allow_expired:
        when = t.expires_at.strftime("%Y-%m-%d %H:%M:%S IST")
        raise NoValidToken(f"the token in {t.origin} expired at {when}; {_fix(config)}")
    return t


def token(
    config: "str | os.PathLike[str] | None" = None,
    account: Optional[str] = None,
    url: Optional[str] = None,
    bearer: Optional[str] = None,
    **kwargs: Any,
) -> str:
    """The current valid access token (see :func:`load`)."""
    return load(config, account, url, bearer, **kwargs).access_token


# --- watching for new tokens -------------------------------------------------------------------


class Watch:
    """A running watcher: ``.stop()`` ends it; ``.token`` is the latest token it saw."""

    def __init__(self, thread_name: str, target: Callable[["Watch"], None]) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conn: Optional[http.client.HTTPConnection] = None
        self.token: Optional[Token] = None
        self._thread = threading.Thread(target=target, args=(self,), name=thread_name, daemon=True)

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Stops watching and waits up to ``timeout`` seconds for the thread to end."""
        self._stop.set()
        with self._lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the watching thread is alive."""
        return self._thread.is_alive()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _deliver(w: Watch, new: Token, callback: Callable[[Token], None]) -> None:
    old = w.token
    w.token = new
    if old is not None and old.access_token == new.access_token:
        return
    try:
        callback(new)
    except Exception:  # a bad callback must not end the watch
        log.exception("dhan_keeper.watch callback raised")


def watch(
    callback: Callable[[Token], None],
    config: "str | os.PathLike[str] | None" = None,
    account: Optional[str] = None,
    url: Optional[str] = None,
    bearer: Optional[str] = None,
    *,
    token_file: "str | os.PathLike[str] | None" = None,
    interval: float = 0.05,
    initial: bool = False,
) -> Watch:
    """Calls ``callback(Token)`` from a daemon thread on every new token; returns a :class:`Watch`.

    Without ``url`` it watches the token file: a ``stat`` every ``interval`` seconds (the keeper
    replaces the file atomically, so a new inode or mtime means a new token). With ``url`` it
    listens to the keeper's ``/events`` stream and fetches ``/token`` on each event, reconnecting
    with ``Last-Event-ID``. ``initial=True`` also calls back with the token in hand at start.
    The callback runs on the watcher's thread; keep it short.
    """
    kwargs: dict = {"config": config, "account": account}
    if url:
        base = _base_url(url)
        if bearer is None:
            bearer = _config_value(config, "http_token")
        return _watch_events(callback, base, bearer, account, initial)
    path = Path(token_file) if token_file else token_path(config)
    kwargs["token_file"] = path
    return _watch_file(callback, path, kwargs, interval, initial)


def _watch_file(callback: Callable[[Token], None], path: Path, kwargs: dict, interval: float, initial: bool) -> Watch:
    def stamp() -> Optional[tuple]:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read() -> Optional[Token]:
        try:
            return load(**kwargs)
        except NoValidToken as e:
            log.debug("dhan_keeper.watch: %s", e)
            return None

    # The token in hand now is the baseline (not news unless `initial`); stamp first, so a
    # change that lands while it is read is seen by the loop.
    seen = stamp()
    baseline = read() if seen is not None else None

    def run(w: Watch) -> None:
        nonlocal seen
        if initial and baseline is not None:
            w.token = None
            _deliver(w, baseline, callback)
        while not w._stop.wait(interval):
            now = stamp()
            if now is None or now == seen:
                continue
            # The keeper renames a complete file into place: a given inode + mtime never changes
            # content, so one read per change is enough.
            seen = now
            new = read()
            if new is not None:
                _deliver(w, new, callback)

    w = Watch("dhan-keeper-watch", run)
    w.token = baseline
    w._thread.start()
    return w


def _watch_events(
    callback: Callable[[Token], None], base: str, bearer: Optional[str], account: Optional[str], initial: bool
) -> Watch:
    parts = urllib.parse.urlsplit(base)

    def fetch() -> Optional[Token]:
        try:
            return load(url=base, bearer=bearer, account=account)
        except NoValidToken as e:
            log.warning("dhan_keeper.watch: %s", e)
            return None

    baseline = fetch()

    def run(w: Watch) -> None:
        if initial and baseline is not None:
            w.token = None
            _deliver(w, baseline, callback)
        last_id: Optional[str] = None
        backoff = 0.2
        while not w._stop.is_set():
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
            with w._lock:
                w._conn = conn
            try:
                headers = {"Authorization": f"Bearer {bearer}", "Accept": "text/event-stream"}
                if last_id:
                    headers["Last-Event-ID"] = last_id
                conn.request("GET", (parts.path or "") + "/events", headers=headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    log.warning("dhan_keeper.watch: %s/events answered HTTP %s", base, resp.status)
                    raise OSError(f"HTTP {resp.status}")
                backoff = 0.2
                # Connected first, then read the token: nothing can fall in between.
                current = fetch()
                if current is not None:
                    _deliver(w, current, callback)
                event, event_id = "message", None
                while not w._stop.is_set():
                    line = resp.readline()
                    if not line:
                        break
                    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                    if not text:
                        if event in ("token", "resync"):
                            new = fetch()
                            if new is not None:
                                _deliver(w, new, callback)
                        if event_id:
                            last_id = event_id
                        event, event_id = "message", None
                    elif text.startswith("event:"):
                        event = text[6:].strip()
                    elif text.startswith("id:"):
                        event_id = text[3:].strip()
            except (OSError, http.client.HTTPException) as e:
                if not w._stop.is_set():
                    log.debug("dhan_keeper.watch: %s/events: %s; reconnecting", base, e)
            finally:
                conn.close()
                with w._lock:
                    w._conn = None
            w._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    w = Watch("dhan-keeper-events", run)
    w.token = baseline
    w._thread.start()
    return w


# --- dhanhq --------------------------------------------------------------------------------------


def dhan_context(
    config: "str | os.PathLike[str] | None" = None,
    account: Optional[str] = None,
    url: Optional[str] = None,
    bearer: Optional[str] = None,
    *,
    token_file: "str | os.PathLike[str] | None" = None,
    client_id: Optional[str] = None,
    disable_ssl: bool = False,
    pool: Optional[dict] = None,
    interval: float = 0.05,
) -> Any:
    """A ``dhanhq.DhanContext`` that always holds the current token.

    Every new token is put into ``get_dhan_http().header['access-token']`` in place, and a call
    in which Dhan refuses the token (401 DH-901, 400 DH-906 "Invalid Token") re-reads the token
    once and is retried if it had changed, so
    ``dhanhq(dhan_keeper.dhan_context())`` keeps working across rotations with no restart.
    The watcher is ``ctx.dhan_keeper_watch`` (``.stop()`` it to stop following).
    """
    try:
        from dhanhq import DhanContext
    except ImportError:
        raise ImportError("dhan_keeper.dhan_context() needs the dhanhq package: pip install dhanhq") from None
    where = {"config": config, "account": account, "url": url, "bearer": bearer, "token_file": token_file}
    first = load(**where)
    ctx = DhanContext(client_id or first.client_id or account or _config_value(config, "client_id"), first.access_token, disable_ssl, pool)
    http_ = ctx.get_dhan_http()
    swap_lock = threading.Lock()

    def swap(t: Token) -> None:
        with swap_lock:
            http_.header["access-token"] = t.access_token
            http_.access_token = t.access_token
            ctx.access_token = t.access_token

    # initial=True: whatever token is current once the watcher runs goes in, even one that
    # replaced `first` in between.
    ctx.dhan_keeper_watch = watch(swap, interval=interval, initial=True, **where)
    _retry_on_401(http_, lambda: load(**where), swap)
    return ctx


#: Dhan's answers to a token it no longer accepts: 401 DH-901, and (live reports, 2026) 400 DH-906
#: "Invalid Token".
_TOKEN_REFUSALS = ("DH-901", "DH-906")


def _token_refused(status: Optional[int], result: Any) -> bool:
    if status == 401:
        return True
    remarks = result.get("remarks") if isinstance(result, dict) else None
    return isinstance(remarks, dict) and remarks.get("error_code") in _TOKEN_REFUSALS


def _retry_on_401(
    http_: Any, reload: Callable[[], Token], swap: Callable[[Token], None], grace: float = 1.0
) -> None:
    """Wraps ``DhanHTTP``'s request path: when Dhan refuses the token (401 DH-901, or 400 DH-906
    "Invalid Token"), re-read the token and retry once if it changed. A refused call did nothing
    at Dhan, so sending it again with the new token is safe.

    Dhan kills the old token the moment it issues the new one, a few milliseconds before the
    keeper has written it: a call refused in that gap waits up to ``grace`` seconds for the new
    token. A token that stays refused for the whole grace is not waited for again."""
    send = getattr(http_, "_send_request", None)
    parse = getattr(http_, "_parse_response", None)
    if not callable(send) or not callable(parse):
        log.warning("this dhanhq version has no DhanHTTP._send_request; tokens are swapped but refusals are not retried")
        return
    last = threading.local()
    given_up: set = set()

    def parse_and_remember(response: Any) -> Any:
        last.status = getattr(response, "status_code", None)
        return parse(response)

    def send_with_retry(method: Any, endpoint: str, payload: Any = None) -> Any:
        sent = http_.header.get("access-token")
        last.status = None
        result = send(method, endpoint, payload)
        if not _token_refused(last.status, result):
            return result
        deadline = time.monotonic() + (0 if sent in given_up else grace)
        while True:
            try:
                fresh: Optional[Token] = reload()
            except NoValidToken as e:
                log.debug("dhan_keeper: Dhan refused the token: %s", e)
                fresh = None
            if fresh is not None and fresh.access_token != sent:
                swap(fresh)
                return send(method, endpoint, payload)
            if time.monotonic() >= deadline:
                if sent not in given_up:
                    given_up.add(sent)
                    log.warning("dhan_keeper: Dhan refused the token and the keeper has no newer one; is `dhan-keeper run` running?")
                return result
            time.sleep(0.02)

    http_._parse_response = parse_and_remember
    http_._send_request = send_with_retry
