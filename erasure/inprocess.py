"""Running a stage's CLI inside the calling process, for the tests and the GPU check.

A stage run as its own process spends about 8 s importing torch, diffusers and transformers before it
does anything; run here, it reuses the caller's imports. No stage imports this module, so a change to
it reruns no pipeline job (each rule's code inputs are the modules its stage imports).
"""
import contextlib
import os
import runpy
import sys
import traceback
from typing import TextIO


def run_script(argv: list[str], stdout: TextIO, stderr: TextIO) -> int:
    """Run the stage script argv[0] with the command line argv in this process, as `python *argv` would,
    its output going to stdout and stderr; returns its exit code (an uncaught exception: 1, with its
    traceback on stderr). sys.argv, the environment and torch's thread count are restored afterwards (a
    stage sets its own)."""
    import torch
    saved_argv, saved_env, saved_threads = sys.argv, dict(os.environ), torch.get_num_threads()
    try:
        sys.argv = [str(a) for a in argv]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                runpy.run_path(sys.argv[0], run_name="__main__")
                return 0
            except SystemExit as e:   # cli.run ends a known bad input with exit code 2
                return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:
                traceback.print_exc()
                return 1
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(saved_threads)
