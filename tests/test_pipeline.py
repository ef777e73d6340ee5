"""The Snakemake DAG on the mini world: a complete small run, then what each kind of change reruns."""
import copy
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    config = miniworld_config(tmp)
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
    assert "| realera |" in (tmp / "out/report/table.md").read_text()


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


def test_bad_config_stops_before_any_work(tmp_path):
    config = miniworld_config(tmp_path)
    config["mining"]["s1"] = 2
    proc = snakemake(write_config(tmp_path, config), "-n")
    assert proc.returncode != 0
    assert "config field mining.s1" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()
