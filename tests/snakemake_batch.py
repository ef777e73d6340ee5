"""Snakemake's command line, run on several configs one after another in one interpreter, so that the
bad-config scan of tests/test_bad_inputs.py starts Python and imports Snakemake once, not once per config
(1.8 s a config as its own process, 0.3 s here). Each run is `snakemake --nolock --cores 1 -n all
--configfile CONFIG`, through the same entry point as `python -m snakemake`.

    python tests/snakemake_batch.py OUT.json CONFIG.yaml [CONFIG.yaml ...]

OUT.json: a list of {"config", "exit", "output"} (stdout and stderr together), in argument order.
"""
import contextlib
import io
import json
import sys

from snakemake.cli import main as snakemake_main


def dry_run(config: str) -> dict:
    said = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        try:
            snakemake_main(["--nolock", "--cores", "1", "-n", "all", "--configfile", config])
        except SystemExit as e:   # the command line ends by sys.exit
            code = e.code if isinstance(e.code, int) else 1
    return {"config": config, "exit": code, "output": said.getvalue()}


if __name__ == "__main__":
    out, *configs = sys.argv[1:]
    with open(out, "w", encoding="utf-8") as f:
        json.dump([dry_run(c) for c in configs], f)
