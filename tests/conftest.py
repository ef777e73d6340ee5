import atexit
import csv
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from erasure.inprocess import run_script  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def minilm():
    from erasure.text import MiniLMEncoder
    return MiniLMEncoder()


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    from tiny_sd import build_tiny_sd
    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory):
    from tiny_sd import build_tiny_flux
    return build_tiny_flux(tmp_path_factory.mktemp("tiny_flux"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    from tiny_sd import build_tiny_sdxl
    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl"))


def small_concepts(path, names=("heart", "circle", "star")):
    """A concepts file with a few of the mini world's concepts and one associated prompt each."""
    full = json.loads((ROOT / "data/miniworld/concepts.json").read_text())
    sub = {n: {**full["concepts"][n], "associated": full["concepts"][n]["associated"][:1]} for n in names}
    path.write_text(json.dumps({"templates": full["templates"], "concepts": sub}))
    return path


def filled_config():
    """config.yaml with every schema default filled in (a complete config, as the stages see it)."""
    from erasure.config import read_config_files, validate
    return validate(read_config_files([]))


def sd_params(model, dtype: str = "float32") -> dict:
    """The world part of an SD stage's parameters ({"world": "sd", "sd": {...}}) for a model directory,
    every other sd key at its schema default."""
    from erasure.config import defaults
    return {"world": "sd", "sd": {**defaults("sd"), "model": str(model), "dtype": dtype}}


def miniworld_config(tmp_path, **overrides):
    """The default config, shrunk: 3 concepts, 1 image per prompt, few mined samples, short LoRA."""
    config = filled_config()
    config.update(out_dir=str(tmp_path / "out"), concepts_file=str(small_concepts(tmp_path / "concepts.json")),
                  erase=["heart"], run_methods=["original", "cf", "realera"])
    config["miniworld"]["weights"] = str(ROOT / "weights/miniworld")
    config["mining"].update(num_neighbors=8, num_beyond=8)
    config["lora"].update(steps=4, anchor_images=4, batch_size=2)
    config["generate"].update(images_per_prompt=1, steps=4)
    for key, value in overrides.items():
        config[key] = value
    return config


def default_config(tmp_path):
    """config.yaml as it ships (defaults filled), with absolute data paths and outputs under tmp_path."""
    config = filled_config()
    config["out_dir"] = str(tmp_path / "out")
    config["miniworld"]["weights"] = str(ROOT / "weights/miniworld")
    config["concepts_file"] = str(ROOT / config["concepts_file"])
    return config


def tiny_objects_config(tmp_path, sd: dict) -> dict:
    """The objects task as it ships (configs/sd_objects.yaml), erasing "heart" on a tiny model (`sd`: its
    model, dtype, ...) with budgets cut to a few steps and random CLIP weights for scoring; out_dir under
    tmp_path. The tiny SDXL and Flux DAG tests start from it."""
    concepts = {"templates": ["{name}"], "concepts": {
        "heart": {"name": "heart", "synonyms": ["love heart"], "associated": [{"prompt": "a love heart"}]},
        "star": {"name": "star", "synonyms": ["shining star"], "associated": [{"prompt": "a shining star"}]}}}
    (tmp_path / "concepts.json").write_text(json.dumps(concepts))
    config = yaml.safe_load((ROOT / "configs/sd_objects.yaml").read_text())
    config.update(out_dir=str(tmp_path / "out"), concepts_file=str(tmp_path / "concepts.json"), erase=["heart"],
                  prompt_template="a {}", anchor="a shape", sd=sd, attacks={"run": []})
    config["scorer"].update(clip_pretrained=None, clip_template="a {}")   # random open_clip weights here
    config["generate"].update(images_per_prompt=2, steps=2, batch_size=4)
    config["mining"] = {"num_neighbors": 6, "num_beyond": 6}
    config["lora"] = {"steps": 2, "anchor_images": 2, "batch_size": 2}
    return config


_STAGE_SERVER = {}


def forked_stages_env(**extra) -> dict:
    """The environment for a Snakemake run whose stage jobs fork from this test process's stage server
    (tests/stage_server.py: about 8 s of imports saved per job), which starts on first use and stops when
    the tests end. Tests about processes (SIGKILL, SLURM) keep real stage processes."""
    if not _STAGE_SERVER:
        folder = Path(tempfile.mkdtemp(prefix="stage-server-"))
        socket_path, server = folder / "socket", ROOT / "tests/stage_server.py"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"HF_HUB_OFFLINE": "1"}
        with open(folder / "server.log", "w") as log:
            proc = subprocess.Popen([sys.executable, str(server), "serve", str(socket_path)], env=env,
                                    stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        assert proc.stdout.readline().strip() == "ready", (folder / "server.log").read_text()
        wrapper = folder / "python"
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(server))} run "
                           f"{shlex.quote(str(socket_path))} \"$@\"\n")
        wrapper.chmod(0o755)
        atexit.register(lambda: (proc.kill(), proc.wait(), shutil.rmtree(folder, ignore_errors=True)))
        _STAGE_SERVER["env"] = {**os.environ, "HF_HUB_OFFLINE": "1", "ERASURE_STAGE_PYTHON": str(wrapper)}
    return {**_STAGE_SERVER["env"], **extra}


def run_dag(tmp_path, config: dict, target: str = "all") -> dict:
    """Write config, run Snakemake's `target` on it (2 cores, stages forked from the stage server) and
    return the report's summary rows of "heart" by method."""
    path = write_config(tmp_path, config, "dag.yaml")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "2", target, "--configfile",
                           str(path)], cwd=ROOT, capture_output=True, text=True, env=forked_stages_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(Path(config["out_dir"]) / "report/summary.csv", newline="") as f:
        return {r["method"]: r for r in csv.DictReader(f) if r["concept"] == "heart"}


def gcd_resources(path, concepts_file):
    """A stand-in for GCD's resources directory: labels.csv names every concept of concepts_file (as GCD's
    folder names, "Tom_Cruise"), and an empty weight file. Returns the directory."""
    names = json.loads(Path(concepts_file).read_text(encoding="utf-8"))["concepts"]
    (path / "face_recognition").mkdir(parents=True)
    (path / "face_recognition/labels.csv").write_text(
        "name,tag\n" + "".join(f"{n.replace(' ', '_')},{i}\n" for i, n in enumerate(names)), encoding="utf-8")
    (path / "face_recognition/best_model_states.pkl").write_text("")
    return path


def write_config(tmp_path, config, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_stage(stage, *args, check=True, new_process=False):
    """Run a stage CLI with these arguments, as `python stages/<stage>.py ARGS` would, but in this process:
    a fresh interpreter would spend seconds importing torch and diffusers each time. Returns its exit
    code, stdout and stderr as a CompletedProcess (an uncaught exception: exit code 1, the traceback on
    stderr, as Python prints it). new_process: a real process, for tests about processes (the drawing
    helpers a generate job starts print from their own processes)."""
    argv = [str(ROOT / "stages" / f"{stage}.py"), *map(str, args)]
    if new_process:
        proc = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if check and proc.returncode != 0:
            raise AssertionError(f"{stage} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc
    out, err, saved_cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(ROOT)
        code = run_script(argv, out, err)
    finally:
        os.chdir(saved_cwd)
    proc = subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"{stage} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc
