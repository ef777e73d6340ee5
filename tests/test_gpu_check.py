"""scripts/gpu_check.py, the GPU check of issue 22, run on CPU with the tiny SD in float16: every stage
runs as its CLI (in the check's own process) and the figures file lists each one and the comparison
with diffusers' pipeline. It runs under the device stand-in (tests/device_standin.py): the world sits on
the stand-in accelerator and no stage may mix its tensors with the host's, as a GPU would refuse."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_every_stage_on_the_tiny_sd(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/gpu_check.py"), "--tiny", "--device-standin",
                           "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    stages = [s["stage"] for s in report["stages"]]
    assert stages[0] == "mine none" and "train_lora realera" in stages and "revival uce" in stages
    assert {"train_esd esd_x", "rece", "attack inversion realera", "replay inversion realera",
            "attack unlearndiff realera", "attack ringabell", "adavd", "sepme", "generate adavd"} <= set(stages)
    assert all(s["device_violations"] == {} for s in report["stages"])
    assert all(s["seconds"] > 0 for s in report["stages"]) and report["dtype"] == "float16"
    assert all(s["peak_gpu_mib"] is None and s["peak_gpu_reserved_mib"] is None for s in report["stages"])  # no GPU here
    assert (out.with_suffix(".logs") / "closed_form_uce.log").read_text().count("closed form uce/cat:") == 1
    g = report["generation"]
    assert g["ours_img_per_s"] > 0 and g["diffusers_img_per_s"] > 0 and g["ratio"] > 0


def run_check(tmp_path, family: str) -> dict:
    """The check's CPU run on the tiny model of `family`, under the device stand-in: its report."""
    out = tmp_path / f"gpu_{family}.json"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/gpu_check.py"), "--tiny", "--family", family,
                           "--device-standin", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["family"] == family and all(s["device_violations"] == {} for s in report["stages"])
    assert report["generation"]["ratio"] > 0
    return report


def test_the_gpu_check_runs_every_stage_on_the_tiny_sdxl(tmp_path):
    stages = {s["stage"] for s in run_check(tmp_path, "sdxl")["stages"]}
    assert {"train_lora realera", "train_esd esd_x", "mace", "sepme", "generate adavd", "attack inversion realera",
            "replay inversion realera", "attack unlearndiff realera", "attack ringabell", "revival uce"} <= stages


def test_the_gpu_check_runs_what_flux_runs_on_the_tiny_flux(tmp_path):
    stages = {s["stage"] for s in run_check(tmp_path, "flux")["stages"]}
    assert {"train_lora realera", "rece", "sepme", "generate realera", "attack inversion realera",
            "replay inversion realera", "attack unlearndiff realera", "attack ringabell", "revival uce"} <= stages
    assert not stages & {"train_esd esd_x", "speed", "mace", "adavd"}     # not built for Flux
