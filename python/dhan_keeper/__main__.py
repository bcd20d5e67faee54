"""``python -m dhan_keeper ARGS``: runs the ``dhan-keeper`` binary with ARGS."""

from __future__ import annotations

import os
import subprocess
import sys

from dhan_keeper._find import BinaryNotFound, find_binary


def _run() -> int:
    try:
        binary = find_binary()
    except BinaryNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if sys.platform == "win32":
        # No exec on Windows: run it as a child and pass its exit code on.
        try:
            return subprocess.call([binary, *sys.argv[1:]])
        except KeyboardInterrupt:
            return 130
    os.execv(binary, [binary, *sys.argv[1:]])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(_run())
