"""The lock on the output directory (erasure/outlock.py): two checkouts cannot write one out_dir at once."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT
from erasure import outlock


def holder(path, pid, host=None):
    (path / outlock.LOCK).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                 "workdir": "/other/checkout", "started": "2026-12-01 09:00:00"}))


def test_the_lock_is_taken_and_released_by_its_holder_only(tmp_path):
    outlock.acquire(tmp_path / "out")
    lock = tmp_path / "out" / outlock.LOCK
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    outlock.acquire(tmp_path / "out")   # the holder may take it again
    outlock.release(tmp_path / "out")
    assert not lock.exists()
    holder(tmp_path / "out", os.getppid())
    outlock.release(tmp_path / "out")   # not ours: left alone
    assert lock.exists()


def test_a_live_run_elsewhere_keeps_the_lock_and_is_named(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        holder(tmp_path, sleeper.pid)
        with pytest.raises(outlock.OutDirLocked, match=rf"in use by the run started 2026-12-01 09:00:00 from "
                                                        rf"/other/checkout \(pid {sleeper.pid} on "):
            outlock.acquire(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    said = []
    outlock.acquire(tmp_path, said.append)   # its process is gone now: taken over, and said so
    assert "left by a run that is gone" in said[0] and json.loads((tmp_path / outlock.LOCK).read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    holder(tmp_path, 1, host="another-login-node")
    with pytest.raises(outlock.OutDirLocked, match="on another-login-node"):
        outlock.acquire(tmp_path)


def test_snakemake_refuses_an_out_dir_another_checkout_is_writing(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        holder(tmp_path, sleeper.pid)
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "1", f"{tmp_path}/prompts.csv",
                               "--config", f"out_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert proc.returncode != 0
    assert f"out_dir {tmp_path} is in use by the run started" in proc.stdout + proc.stderr
    assert not (tmp_path / "prompts.csv").exists()
