"""The Snakemake DAG on the mini world: a complete small run, then what each kind of change reruns."""
import copy
import csv
import itertools
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, miniworld_config, write_config

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock", "--cores", "2"]


def snakemake(configfile, *args):
    # Targets and flags go before --configfile, which takes every value after it.
    return subprocess.run([*SNAKEMAKE, *args, "--configfile", str(configfile)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def planned_rules(configfile):
    """The rules a dry run would execute (from its job-stats table)."""
    proc = snakemake(configfile, "-n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "Nothing to be done" in proc.stdout + proc.stderr:
        return set()
    table = (proc.stdout + proc.stderr).split("Job stats:")[1]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", table, flags=re.M)) - {"total"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    config = miniworld_config(tmp, run_methods=["original", "cf", "cf_na", "cf_na_mine", "realera"])  # Table 3
    config["miniworld"]["weights"] = str(shutil.copytree(ROOT / "weights/miniworld", tmp / "weights"))
    path = write_config(tmp, config)
    proc = snakemake(path, "all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, config, path


def test_report_has_the_papers_columns(finished_run):
    tmp, config, _ = finished_run
    with open(tmp / "out/report/summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "n_images"} <= set(rows[0])
    assert {(r["method"], r["concept"]) for r in rows} >= {("original", "heart"), ("cf", "heart"), ("realera", "heart")}
    assert (tmp / "out/report/index.html").read_text().count("<img") >= 3
    table = (tmp / "out/report/table.md").read_text()
    assert "| realera |" in table and "COCO-30k" not in table   # no COCO captions in the mini world


def test_the_four_table3_variants_give_different_weights(finished_run):
    from erasure.edits import apply_edit
    from erasure.world import load_miniworld
    tmp, config, _ = finished_run
    out = tmp / "out"
    weights = {}
    for method in ("cf", "cf_na", "cf_na_mine", "realera"):
        lora = out / "lora" / method / "heart"
        world = apply_edit(load_miniworld(config["miniworld"]["weights"]), out / "edit" / method / "heart.safetensors",
                           lora if config["methods"][method]["lora"] else None)
        weights[method] = torch.cat([p.flatten() for p in world.unet.parameters()])
    for a, b in itertools.combinations(weights, 2):
        assert not torch.equal(weights[a], weights[b]), f"{a} and {b} have the same weights"


def test_the_same_config_twice_gives_identical_bytes(finished_run, tmp_path):
    import hashlib
    tmp, config, _ = finished_run
    again = copy.deepcopy(config)
    again["out_dir"] = str(tmp_path / "out")
    proc = snakemake(write_config(tmp_path, again), "all")
    assert proc.returncode == 0, proc.stderr[-2000:]

    def hashes(out):
        # weights, images and the report's tables (other CSVs and sidecars name their own paths)
        files = [p for p in sorted(out.rglob("*")) if p.is_file() and "logs" not in p.parts and
                 (p.suffix in {".safetensors", ".png"} or (p.parent.name == "report" and p.suffix in {".csv", ".md"}))]
        return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    first = hashes(tmp / "out")
    assert len(first) > 20 and hashes(tmp_path / "out") == first


def test_nothing_to_do_after_a_complete_run(finished_run):
    assert planned_rules(finished_run[2]) == set()


def test_generation_change_reruns_generate_score_report(finished_run):
    tmp, config, _ = finished_run
    changed = copy.deepcopy(config)
    changed["generate"]["steps"] += 1
    assert planned_rules(write_config(tmp, changed, "gen.yaml")) == {"generate", "score", "report", "all"}


def test_mining_change_reruns_from_mine(finished_run):
    tmp, config, _ = finished_run
    changed = copy.deepcopy(config)
    changed["mining"]["d1"] = 0.5
    assert planned_rules(write_config(tmp, changed, "mine.yaml")) == {
        "mine", "audit", "closed_form", "train_lora", "generate", "score", "remap", "report", "all"}


def test_editing_a_stage_reruns_it_and_what_follows(finished_run):
    # A real edit: Snakemake ignores a newer mtime when the file's checksum is unchanged.
    source = ROOT / "stages" / "score.py"
    text, stat = source.read_text(), source.stat()
    try:
        source.write_text(text + "\n# edited by test_pipeline\n")
        assert planned_rules(finished_run[2]) == {"score", "report", "all"}
    finally:
        source.write_text(text)
        os.utime(source, (stat.st_atime, stat.st_mtime))


def test_retrained_weights_rerun_what_loads_them(finished_run):
    from safetensors.torch import load_file, save_file
    tmp, _, path = finished_run
    expected = {"oracle": {"score", "report", "all"},
                "unet": {"closed_form", "train_lora", "generate", "score", "remap", "report", "all"}}
    for name, rules in expected.items():
        weights = tmp / "weights" / f"{name}.safetensors"
        data, stat = weights.read_bytes(), weights.stat()
        try:  # the same tensors under new metadata: new bytes, as a retrained file would have
            save_file(load_file(weights), weights, metadata={"retrained": "yes"})
            assert planned_rules(path) == rules
        finally:
            weights.write_bytes(data)
            os.utime(weights, (stat.st_atime, stat.st_mtime))


def test_bad_config_stops_before_any_work(tmp_path):
    config = miniworld_config(tmp_path)
    config["mining"]["s1"] = 2
    proc = snakemake(write_config(tmp_path, config), "-n")
    assert proc.returncode != 0
    assert "config field mining.s1" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_sepme_sets_erase_restore_and_joint_rows(tmp_path):
    config = miniworld_config(tmp_path, run_methods=["original"], sepme_sets={"k1": ["heart"], "k2": ["heart", "star"]},
                              sepme_restore="heart")
    config["generate"].update(images_per_prompt=1, steps=2, other_associated=False)
    path = write_config(tmp_path, config)
    proc = snakemake(path, "sepme_table")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "out/report/sepme.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["set"], r["model"], r["concept"], r["role"]) for r in rows} == {
        ("k1", "all", "heart", "erased"), ("k2", "all", "heart", "erased"), ("k2", "all", "star", "erased"),
        ("k2", "joint", "heart", "erased"), ("k2", "joint", "star", "erased"),
        ("k2", "restore", "heart", "restored"), ("k2", "restore", "star", "erased")}
    # the restore model's edit is exactly star's increment: heart's increment is left out
    from safetensors.torch import load_file
    from erasure import sepme
    from erasure.world import load_miniworld
    restore = load_file(tmp_path / "out/sepme_sets/k2/restore.safetensors")
    star = load_file(tmp_path / "out/sepme_sets/k2/increments/star.safetensors")["delta"]
    expected = sepme.module_increments(load_miniworld(ROOT / "weights/miniworld").edit_modules(), star)
    assert restore.keys() == expected.keys() and all(torch.equal(restore[k], expected[k]) for k in expected)
    # the set model draws only the set's associated prompts (plus every canonical prompt)
    manifest = (tmp_path / "out/images/set_k2/all.csv").read_text()
    assert manifest.count(",associated,") == 2 and manifest.count(",erase,") == 3
