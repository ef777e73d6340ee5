"""Interruption: SIGKILL generation and LoRA training part-way, rerun, and get exactly the outputs of an
uninterrupted run (no truncated file is ever trusted). Determinism of a whole run: tests/test_pipeline.py."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, miniworld_config, run_stage, write_config


def start_stage(stage, *args):
    return subprocess.Popen([sys.executable, str(ROOT / "stages" / f"{stage}.py"), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})


def kill_on_line(proc, text):
    """SIGKILL proc as soon as it prints a line containing `text`; fails if it finished first."""
    for line in proc.stdout:
        if text in line:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
    raise AssertionError(f"the stage finished without printing {text!r}")


def kill_when(proc, ready, timeout=300):
    """SIGKILL proc as soon as ready() is true; fails if it finished first."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the stage finished before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    config = miniworld_config(tmp)
    config["generate"].update(images_per_prompt=12, batch_size=4, steps=3)
    config["lora"].update(steps=45, anchor_images=4, batch_size=2)
    return write_config(tmp, config), tmp


@pytest.mark.parametrize("kill_after", [1, 9])
def test_generation_killed_then_rerun_equals_an_uninterrupted_run(config_path, kill_after):
    path, tmp = config_path
    ref = tmp / "ref" / "m.csv"
    if not ref.exists():  # one uninterrupted run for both kill points
        run_stage("generate", "--config", path, "--method", "original", "--out", ref)
    out = tmp / f"killed{kill_after}" / "m.csv"
    proc = start_stage("generate", "--config", path, "--method", "original", "--out", out)
    kill_when(proc, lambda: len(list(out.parent.glob("*/*.png"))) >= kill_after * 4)
    assert not out.exists()                       # no manifest from the killed run
    run_stage("generate", "--config", path, "--method", "original", "--out", out)
    ref_files = sorted(ref.parent.glob("*/*.png"))
    got_files = sorted(out.parent.glob("*/*.png"))
    assert [p.name for p in got_files] == [p.name for p in ref_files] and len(ref_files) > kill_after * 4
    assert [digest(p) for p in got_files] == [digest(p) for p in ref_files]
    assert not list(out.parent.rglob("*.tmp*"))


@pytest.mark.parametrize("when", ["before_any_checkpoint", "after_a_checkpoint"])
def test_lora_killed_then_rerun_gives_the_same_weights(config_path, when):
    path, tmp = config_path
    config = yaml.safe_load(path.read_text())
    edit = tmp / "edit.safetensors"
    mined = tmp / "mine" / "paper.safetensors"
    args = ["--config", path, "--method", "realera", "--concept", "heart", "--deltas", edit, "--embeddings", mined]
    ref = tmp / "lora_ref" / "pytorch_lora_weights.safetensors"
    if not ref.exists():
        run_stage("mine", "--config", path, "--concept", "heart", "--sampler", "paper", "--out", mined)
        run_stage("closed_form", "--config", path, "--method", "realera", "--concept", "heart", "--embeddings", mined,
                  "--out", edit)
        run_stage("train_lora", *args, "--out", ref)
    out = tmp / f"lora_{when}" / "pytorch_lora_weights.safetensors"
    proc = start_stage("train_lora", *args, "--out", out)
    if when == "after_a_checkpoint":
        kill_when(proc, lambda: (out.parent / "checkpoint.safetensors").exists())
    else:
        kill_on_line(proc, "lora: 10/")   # training has begun; the first checkpoint comes at step 20
        assert not (out.parent / "checkpoint.safetensors").exists()
    assert not out.exists()
    resumed = run_stage("train_lora", *args, "--out", out)
    start = 20 if when == "after_a_checkpoint" else 0
    assert ("resuming LoRA training at step 20" in resumed.stdout) == bool(start)
    assert digest(out) == digest(ref)
    assert json.loads(out.with_suffix(".json").read_text())["steps_run"] == config["lora"]["steps"] - start
    assert not (out.parent / "checkpoint.safetensors").exists()
