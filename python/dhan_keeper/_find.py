"""Finding the ``dhan-keeper`` binary that the wheel installed beside this module.

pip puts the binary in the environment's scripts directory, which is not always on PATH (a
virtual environment that is not activated, ``pip install --user``, ``--prefix`` or ``--target``),
so look where each of those puts it, the way uv's ``find_uv_bin`` does, before trying PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from fnmatch import fnmatch


class BinaryNotFound(FileNotFoundError):
    """The ``dhan-keeper`` binary is not where this package's wheel installs it."""


def find_binary() -> str:
    """Return the path of the ``dhan-keeper`` binary installed with this package."""
    exe = "dhan-keeper" + (sysconfig.get_config_var("EXE") or "")
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        sysconfig.get_path("scripts"),
        sysconfig.get_path("scripts", vars={"base": sys.base_prefix}),
        sysconfig.get_path("scripts", scheme=sysconfig.get_preferred_scheme("user")),
        # `pip install --prefix P`: P/lib/python3.x/site-packages/dhan_keeper -> P/bin
        _join(_strip(here, "lib/python*/site-packages/dhan_keeper"), "bin"),
        # `pip install --target T`: T/dhan_keeper -> T/bin
        _join(_strip(here, "dhan_keeper"), "bin"),
    ]
    seen: list[str] = []
    for directory in candidates:
        if not directory or directory in seen:
            continue
        seen.append(directory)
        path = os.path.join(directory, exe)
        if os.path.isfile(path):
            return path
    on_path = shutil.which(exe)
    if on_path:
        return on_path
    raise BinaryNotFound(
        "could not find the dhan-keeper binary in any of:\n"
        + "".join(f" - {d}\n" for d in seen)
        + "and it is not on PATH; reinstall with `pip install --force-reinstall dhan-keeper`"
    )


def _strip(path: str, suffix: str) -> str | None:
    parts = path.split(os.sep)
    want = suffix.split("/")
    if len(parts) < len(want):
        return None
    if not all(fnmatch(p.lower(), w.lower()) for p, w in zip(reversed(parts), reversed(want))):
        return None
    return os.sep.join(parts[: -len(want)])


def _join(path: str | None, *parts: str) -> str | None:
    return os.path.join(path, *parts) if path else None
