"""A lock on the output directory itself, held for the length of a run.

Snakemake's own lock lives in the working directory's .snakemake/, so two checkouts given the same
absolute out_dir would run at once and overwrite each other's files. The main Snakemake process takes
<out_dir>/.erasure-lock when a run starts (the Snakefile's onstart: never in a dry run, never inside a
cluster job, which Snakemake starts with --no-hooks) and removes it when the run ends. A lock left by
a run that died (its process is gone) is taken over, and the run says so.
"""
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

LOCK = ".erasure-lock"


class OutDirLocked(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: alive
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None   # half-written or unreadable: no valid holder


def acquire(out_dir: str | Path, progress: Callable[[str], None] = print) -> None:
    """Take the lock for this process, or raise OutDirLocked naming the run that holds it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "workdir": os.getcwd(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _holder(path)
            if other and other.get("host") == me["host"] and other.get("pid") == me["pid"]:
                return
            if other and (other.get("host") != me["host"] or _alive(int(other.get("pid", -1)))):
                raise OutDirLocked(
                    f"out_dir {out_dir} is in use by the run started {other.get('started')} from "
                    f"{other.get('workdir')} (pid {other.get('pid')} on {other.get('host')}): wait for it or give "
                    f"this run another out_dir; if that run is over, delete {path}") from None
            progress(f"out_dir lock {path} was left by a run that is gone; taking it over")
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return
    raise OutDirLocked(f"could not take the out_dir lock {path}: another run keeps taking it")


def release(out_dir: str | Path) -> None:
    """Remove the lock if this process holds it."""
    path = Path(out_dir) / LOCK
    holder = _holder(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)
