"""A stage server for the tests' whole-DAG runs: stage processes forked from one that has already
imported torch, diffusers, transformers and peft, instead of fresh interpreters.

A stage run as `python stages/X.py` spends about 8 s importing those libraries before it does anything,
and a tiny-model stage then works for under a second, so the DAG tests paid mostly for imports. The
workflow runs every stage as `{PY} stages/X.py ARGS` with PY taken from $ERASURE_STAGE_PYTHON when set
(workflow/rules/common.smk); the tests set it to a small client of this server:

    python tests/stage_server.py serve SOCKET    # imports everything, then forks one child per request
    python tests/stage_server.py run SOCKET stages/X.py ARGS...   # what the client wrapper executes

The child takes the client's working directory, environment, command line and standard streams, drops
every `erasure` module the server imported (so it imports the package afresh from disk, as a new process
would, and an edited copy of the repository runs its own code), runs the script as `__main__` and
reports its exit code, which the client exits with. SIGTERM, SIGINT and SIGHUP sent to the client are
passed on to the child. Tests about processes themselves (SIGKILL and resume, the SLURM run) keep
real processes.
"""
import atexit
import json
import os
import runpy
import signal
import socket
import struct
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CODE = struct.Struct("!i")
_BASE_PATH = sys.path[1:]   # the server runs without PYTHONPATH: the interpreter's own search path


def preload():
    """Import every erasure module once, so that the libraries they import (and the parts of diffusers
    and transformers they reach lazily) are in memory; then forget the erasure modules themselves."""
    sys.path.insert(0, str(ROOT))
    for path in sorted((ROOT / "erasure").glob("*.py")):
        try:
            __import__(f"erasure.{path.stem}")
        except Exception:   # a module for an optional extra (e.g. GCD's worker): its child imports it
            pass
    sys.path.remove(str(ROOT))
    forget_erasure()


def forget_erasure():
    for name in [n for n in sys.modules if n == "erasure" or n.startswith("erasure.")]:
        del sys.modules[name]


def serve(path: str):
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ready", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            run_child(conn)   # never returns
        conn.close()


def run_child(conn: socket.socket):
    """In the forked child: become the client's stage process, run it, send the exit code, exit."""
    message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    request = json.loads(message)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = request["argv"][0]
    sys.argv = list(request["argv"])
    # What `python script` searches: the script's directory, then $PYTHONPATH, then the interpreter's own.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(os.path.realpath(script)), *map(os.path.abspath, extra), *_BASE_PATH]
    conn.sendall(_CODE.pack(os.getpid()))
    code = 1
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        conn.sendall(_CODE.pack(code))
    finally:
        os._exit(code)


def run(path: str, argv: list[str]) -> int:
    """The client: hand this process's streams, directory, environment and command line to the server's
    new child and wait for its exit code."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [request], [0, 1, 2])
    started = _recv_exact(conn, _CODE.size)
    if started is None:
        print("stage server: the stage process did not start (see the server's log)", file=sys.stderr)
        return 1
    child = _CODE.unpack(started)[0]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, _frame: os.kill(child, s))
    answer = _recv_exact(conn, _CODE.size)
    if answer is None:
        print(f"stage server: the stage process {child} ended without an exit code (killed?)", file=sys.stderr)
        return 1
    return _CODE.unpack(answer)[0]


def _recv_exact(conn: socket.socket, n: int):
    data = b""
    while len(data) < n:
        part = conn.recv(n - len(data))
        if not part:
            return None
        data += part
    return data


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(run(sys.argv[2], sys.argv[3:]))
