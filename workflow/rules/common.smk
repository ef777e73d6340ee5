import ast
import functools
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from erasure import outlock as _outlock, params as P, prompts
from erasure.config import ConfigError, load_config
from erasure.io import slug

try:
    load_config(config)  # validates, fills defaults in place, checks files; nothing runs on a bad config
except ConfigError as e:
    raise WorkflowError(str(e)) from None

OUT = config["out_dir"]
REPORT = f"{OUT}/{config['report']['name']}"
ERASE = [slug(c) for c in config["erase"]]
METHODS = config["methods"]
EDIT_METHODS = [m for m in config["run_methods"] if m != "original"]
# The edited methods whose edit is in the weights (AdaVD's is in attention processors): exported by
# default, and given remap scores.
WEIGHT_METHODS = [m for m in EDIT_METHODS if METHODS[m]["kind"] != "adavd"]
SAMPLERS = sorted({METHODS[m]["mining"] for m in EDIT_METHODS if METHODS[m]["kind"] == "realera"} - {"none"})
AUDITS = [f"{OUT}/mine/{s}/{c}_audit/audit.md" for s in SAMPLERS for c in ERASE]
# The interpreter running Snakemake (the project venv) runs every stage. The tests may name another
# command that behaves as `python` does (tests/stage_server.py's client: stages forked from a process
# that has imported torch and diffusers already).
PY = os.environ.get("ERASURE_STAGE_PYTHON") or sys.executable
BASEDIR = Path(workflow.basedir)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

wildcard_constraints:
    concept="[a-z0-9_-]+",
    method="[A-Za-z0-9_-]+",
    sampler="none|paper|data",
    set="[a-z0-9_-]+",


def one_of(names):
    """A wildcard pattern matching exactly these names (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


CLOSED_FORM_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] in ("realera", "uce")])
ESD_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "esd"])
SEPME_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "sepme"])
RECE_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "rece"])
ADAVD_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "adavd"])
SPEED_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "speed"])
MACE_METHODS = one_of([m for m in METHODS if METHODS[m]["kind"] == "mace"])


@functools.lru_cache(maxsize=None)   # every rule asks again for the same modules: parse each file once
def _imported_modules(path):
    """The erasure/ modules one source file imports (at the top or inside functions), as file paths."""
    tree = ast.parse((BASEDIR / path).read_text(encoding="utf-8"), filename=path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "erasure"}
        elif isinstance(node, ast.ImportFrom):
            package = "erasure" if node.level else node.module
            if node.level and node.module:
                package = f"erasure.{node.module}"
            if package == "erasure" or (package or "").startswith("erasure."):
                names |= {package} | {f"{package}.{a.name}" for a in node.names}
    files = [name.replace(".", "/") + ".py" for name in names]
    return tuple(f for f in files if (BASEDIR / f).is_file()) + ("erasure/__init__.py",)


# erasure/params.py turns the config into each job's `params:` value; a stage imports it only to do the same
# when run by hand with --config. A DAG job gets that value as --params, which Snakemake compares itself, so
# an edit of params.py reruns exactly the jobs whose parameters it changes; as a code input it reran every job.
PARAMS_MODULE = "erasure/params.py"


def code_inputs(*entry_points):
    """The source files a rule runs: its entry points (a stage, or a module its run: block calls) and
    every erasure/ module they import, directly or through another (but PARAMS_MODULE itself). Editing any
    of them reruns the rule and what follows; lists kept by hand drifted from the imports."""
    files, todo = set(), [f"stages/{e}.py" if "/" not in e else e for e in entry_points]
    while todo:
        path = todo.pop()
        if path not in files:
            files.add(path)
            todo += _imported_modules(path) if path.endswith(".py") else ()
    return sorted(files - {PARAMS_MODULE})


# The mini world's weight files are inputs of the rules that load them, so retrained weights rerun
# what depends on them. (Stable Diffusion weights sit behind a model id Snakemake cannot track.)
_MINI = config["miniworld"]["weights"] if config["world"] == "miniworld" else None
UNET_WEIGHTS = [f"{_MINI}/unet.safetensors"] if _MINI else []
ORACLE_WEIGHTS = [f"{_MINI}/oracle.safetensors"] if _MINI else []  # the mini world always scores with its oracle


def as_json(fn):
    """params: value for a stage: its parameter dict as JSON (compared by Snakemake for reruns)."""
    return lambda wildcards: json.dumps(fn(wildcards), sort_keys=True)


# Resources per rule, sized for Stable Diffusion v1.x on one GPU; override under config `resources`.
# threads sets torch's thread count (a CPU generate job splits its batches over that many processes).
DEFAULT_RESOURCES = {
    "mine": dict(mem_mb=8000, runtime=30, gpu=0, threads=1),
    "closed_form": dict(mem_mb=16000, runtime=30, gpu=0, threads=1),
    "train_lora": dict(mem_mb=32000, runtime=240, gpu=1, threads=1),
    "train_esd": dict(mem_mb=32000, runtime=240, gpu=1, threads=1),
    "sepme": dict(mem_mb=16000, runtime=30, gpu=0, threads=1),
    "sepme_set": dict(mem_mb=16000, runtime=30, gpu=0, threads=1),
    "attack": dict(mem_mb=32000, runtime=240, gpu=1, threads=1),
    "generate": dict(mem_mb=32000, runtime=720, gpu=1, threads=1),
    "score": dict(mem_mb=16000, runtime=120, gpu=1, threads=1),
    "remap": dict(mem_mb=16000, runtime=30, gpu=0, threads=1),
    "quality": dict(mem_mb=16000, runtime=180, gpu=1, threads=1),
    "report": dict(mem_mb=4000, runtime=30, gpu=0, threads=1),
    "export": dict(mem_mb=32000, runtime=30, gpu=0, threads=1),
    "pretrain": dict(mem_mb=8000, runtime=240, gpu=0, threads=2),
}


# The mini world's 3.4M-parameter model needs far less memory; GPU requests stay as they are, so the
# default run exercises the same GPU scheduling on a cluster as a Stable Diffusion run.
MINIWORLD_MEM_MB = 3000


def res(rule_name, key):
    default = DEFAULT_RESOURCES[rule_name][key]
    if key == "mem_mb" and config["world"] == "miniworld":
        default = MINIWORLD_MEM_MB
    return config["resources"].get(rule_name, {}).get(key, default)


def resources_of(rule_name, **fixed):
    """A rule's SLURM resources (mem_mb, runtime in minutes, gpu); `fixed` pins a value the config
    cannot override (the CPU-only rules that borrow another rule's sizes)."""
    return {key: res(rule_name, key) for key in ("mem_mb", "runtime", "gpu")} | fixed


def deltas_path(method, concept):
    return f"{OUT}/edit/{method}/{concept}.safetensors"


def lora_dir(method, concept):
    return f"{OUT}/lora/{method}/{concept}"
