"""Every rule's code inputs hold every erasure/ module its stage imports (directly, through another
module, or inside a function), so editing any of them reruns the rule.

The rules' inputs come from Snakemake's own dry run; the imports from the standard library's
ModuleFinder, which reads the compiled code of each stage and every module it reaches: a second,
independent reading of the imports, not the Snakefile's helper."""
import functools
import json
import re
import subprocess
import sys
from modulefinder import ModuleFinder

import pytest
import yaml

from conftest import ROOT, miniworld_config, write_config

# Rules whose code is a run: block in the rule files, and the package modules that block calls.
RUN_BLOCKS = {"prompts": {"erasure/prompts.py", "erasure/io.py"},
              "i2p_prompts": {"erasure/datasets.py"}, "coco_prompts": {"erasure/datasets.py"}}
NO_CODE = {"all", "fetch_i2p", "fetch_coco"}   # targets and downloads (a download is pinned by its checksum)


@functools.lru_cache(maxsize=None)   # many jobs run the same stage
def stage_imports(stage):
    """Repository-relative files of the erasure/ modules a stage file reaches."""
    finder = ModuleFinder(path=[str(ROOT)])
    finder.run_script(str(ROOT / "stages" / f"{stage}.py"))
    return frozenset(str(m.__file__).removeprefix(f"{ROOT}/") for name, m in finder.modules.items()
                     if name.split(".")[0] == "erasure" and m.__file__)


def planned_jobs(*args):
    """(rule, input files, shell command) of every job a dry run plans, and the workflow's rule names."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--nolock", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=\[.*\]\n(?:local)?rule )", proc.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, flags=re.M)
        if rule:
            inputs = re.search(r"^    input: (.*)$", block, flags=re.M)
            shell = re.search(r"stages/(\w+)\.py", block)
            jobs.append((rule.group(1), set(inputs.group(1).split(", ")) if inputs else set(),
                         shell.group(1) if shell else None))
    return jobs


@pytest.fixture(scope="module")
def every_job(tmp_path_factory, tiny_sd):
    """Jobs of two fresh runs that between them use every rule: the mini world with every method kind,
    a SepME set, the results copy, pretrain and the original table; and the tiny SD with I2P, COCO-30k
    and FID."""
    tmp = tmp_path_factory.mktemp("code_inputs")
    mini = miniworld_config(tmp, run_methods=["original", "cf", "realera", "uce", "esd_x", "sepme", "rece"],
                            sepme_sets={"k2": ["heart", "star"]}, sepme_restore="heart")
    mini["report"].update(results=str(tmp / "results/table"), command="snakemake results")
    mini["attacks"].update(run=["inversion", "ringabell", "unlearndiff", "revival"], transfer=True,
                           results=str(tmp / "results/robust"))
    jobs = planned_jobs("all", "sepme_table", "results", "robustness_results", "pretrain", "original_table",
                        "--configfile", str(write_config(tmp, mini, "mini.yaml")))

    raw = tmp / "i2p.csv"
    raw.write_text("prompt,categories,evaluation_seed\na statue,sexual,5\n")
    captions = tmp / "captions.json"
    captions.write_text(json.dumps({"annotations": [{"id": 1, "image_id": 1, "caption": "a cat"}]}))
    (tmp / "inception").mkdir()
    (tmp / "inception/inception-2015-12-05.pt").write_bytes(b"")   # planning only checks that it exists
    (tmp / "reference").mkdir()
    sd = {"sd": {"model": str(tiny_sd)}, "out_dir": str(tmp / "sd_out"),
          "i2p": {"enabled": True, "raw": str(raw), "prompts": str(tmp / "i2p_prompts.csv"), "rows": 1},
          "coco": {"enabled": True, "raw": str(captions), "prompts": str(tmp / "coco.csv"), "rows": 1,
                   "reference_dir": str(tmp / "reference"), "inception_dir": str(tmp / "inception")}}
    (tmp / "sd.yaml").write_text(yaml.safe_dump(sd))
    jobs += planned_jobs("all", "--configfile", str(ROOT / "configs/sd_explicit.yaml"), str(tmp / "sd.yaml"))
    return jobs


def test_the_two_runs_use_every_rule(every_job):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules", "--nolock"], cwd=ROOT,
                          capture_output=True, text=True)
    defined = set(proc.stdout.split()) - NO_CODE - {"results"}   # results exists only with report.results
    assert defined and defined <= {rule for rule, _, _ in every_job}


def test_every_rule_lists_each_module_its_stage_imports(every_job):
    checked = set()
    for rule, inputs, stage in every_job:
        if rule in NO_CODE:
            continue
        needed = ({f"stages/{stage}.py"} | stage_imports(stage)) if stage else RUN_BLOCKS[rule]
        # erasure/params.py reaches a job only as its --params value, which Snakemake compares itself
        needed -= {"erasure/params.py"}
        assert needed <= inputs and "erasure/params.py" not in inputs, f"rule {rule} misses {sorted(needed - inputs)}"
        checked.add(rule)
    assert {"mine", "closed_form", "train_lora", "train_esd", "sepme", "generate", "score", "quality",
            "attack_inversion", "attack_unlearndiff", "attack_prompts", "replay", "robustness", "rece",
            "attack_revival", "replay_revival", "score_revival"} <= checked


def test_the_gaps_found_by_hand_are_closed(every_job):
    """The modules the hand-kept lists had left out (issue 18)."""
    inputs = {rule: files for rule, files, _ in every_job}
    assert "erasure/sampling.py" in inputs["train_esd"]
    assert "erasure/render.py" in inputs["score"]
    assert "erasure/closed_form.py" in inputs["generate"] and "erasure/closed_form.py" in inputs["sepme"]
    assert {"erasure/mining.py", "erasure/checkpoint.py", "erasure/embedding_set.py",
            "erasure/closed_form.py"} <= inputs["train_lora"]
