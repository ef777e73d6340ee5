"""The Stable Diffusion task configs: each validates and plans its whole DAG (with the tiny SD standing
in for SD v1.4, the tiny SDXL for SDXL base, the tiny Flux for FLUX.1-dev); the concept data they point
to is complete."""
import json
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, gcd_resources

TASKS = ["sd_objects", "sd_celebrities", "sd_artists", "sd_explicit", "sdxl_objects", "sdxl_explicit",
         "flux_celebrities", "flux_explicit"]


@pytest.mark.parametrize("task", TASKS)
def test_task_config_plans_its_dag(task, tiny_sd, tiny_sdxl, tiny_flux, tmp_path):
    override = tmp_path / "model.yaml"
    model = {"sdxl": tiny_sdxl, "flux": tiny_flux}.get(task.split("_")[0], tiny_sd)
    site = {"sd": {"model": str(model)}, "out_dir": str(tmp_path / "out")}
    if task.endswith("celebrities"):  # what a user sets after building GCD's environment (README)
        gcd_resources(tmp_path / "gcd", ROOT / "data/sd/celebrities.json")
        site["scorer"] = {"kind": "gcd", "gcd_python": sys.executable, "gcd_resources": str(tmp_path / "gcd")}
    if task.endswith("explicit"):  # I2P's CSV put in place by hand (a 1-row stand-in)
        raw = tmp_path / "i2p_benchmark.csv"
        raw.write_text("prompt,categories,evaluation_seed\na statue,sexual,5\n")
        site["i2p"] = {"enabled": True, "raw": str(raw), "prompts": str(tmp_path / "i2p_prompts.csv"), "rows": 1}
        captions = tmp_path / "captions_val2014.json"   # and COCO's captions (a 2-image stand-in)
        captions.write_text(json.dumps({"annotations": [{"id": i, "image_id": i, "caption": "a cat"} for i in (1, 2)]}))
        site["coco"] = {"enabled": True, "raw": str(captions), "prompts": str(tmp_path / "coco.csv"), "rows": 2}
    override.write_text(yaml.safe_dump(site))
    # planned as the README documents it: snakemake --profile profiles/slurm all --configfile configs/<task>.yaml
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--profile", "profiles/slurm", "all",
                           "--configfile", str(ROOT / "configs" / f"{task}.yaml"), str(override)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    config = yaml.safe_load((ROOT / "configs" / f"{task}.yaml").read_text())
    jobs = dict(l.split()[:2] for l in proc.stdout.split("Job stats:")[1].split("total")[0].splitlines()[3:] if l.strip())
    sets = 1 + len(config["erase"]) * (len(config["run_methods"]) - 1)   # the unedited model + each edit
    assert int(jobs["generate"]) == int(jobs["score"]) == sets
    assert int(jobs.get("quality", 0)) == (sets if task.endswith("explicit") else 0)
    # every job that runs a model on images asks SLURM for a GPU; the closed forms (ours and SPEED's),
    # mining and AdaVD's target embeddings (text only: AdaVD's cost is in generation) do not
    asked = dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: .*\bgpu=(\d+)", proc.stdout, flags=re.M))
    assert all(asked[r] == "1" for r in ("generate", "score", "train_lora", "mace") if r in asked), asked
    assert "mace" in asked or "mace" not in config["run_methods"], asked   # MACE draws images and trains its LoRA
    assert asked["closed_form"] == asked["mine"] == "0", asked
    assert all(asked[r] == "0" for r in ("adavd", "speed") if r in asked), asked


def test_task_concept_files():
    cifar = json.loads((ROOT / "data/sd/cifar10.json").read_text())["concepts"]
    assert len(cifar) == 10 and all(len(c["associated"]) == 3 for c in cifar.values())
    for name in ("celebrities", "artists"):
        concepts = json.loads((ROOT / f"data/sd/{name}.json").read_text())["concepts"]
        erased = yaml.safe_load((ROOT / f"configs/sd_{name}.yaml").read_text())["erase"]
        assert all(len(concepts[e]["associated"]) == 1 for e in erased) and len(concepts) > 100


def part_configs(part):
    """The config files a part's recorded command runs with (the table's config, then the part)."""
    command = yaml.safe_load((ROOT / "configs/parts" / f"{part}.yaml").read_text())["report"]["command"]
    return command.split("--configfile")[1].split()


def rows_of(*files):
    """The (method, concept) rows a run of these config files, merged in order, draws."""
    config = {}
    for f in files:
        config.update(yaml.safe_load((ROOT / f).read_text()))
    return {(m, c) for m in config["run_methods"] for c in config["erase"]}


@pytest.mark.parametrize("table, parts", [
    ("methods", [f"methods_{c}_{g}" for c in ("heart", "crescent") for g in ("core", "uce", "esd")]),
    ("ablation", ["methods_heart_core", "methods_crescent_core", "ablation_extra"])])
def test_a_tables_parts_draw_each_of_its_rows(table, parts):
    """The parts merged into a table (the merge command in its config's header) draw every row of the table's
    own config: each part runs with the config its command names, and the methods parts never overlap."""
    drawn = [rows_of(*part_configs(p)) for p in parts]
    wanted = rows_of(f"configs/miniworld_{table}.yaml")
    assert wanted <= set().union(*drawn)
    if table == "methods":
        assert sum(map(len, drawn)) == len(wanted)


def test_the_sepme_parts_draw_each_set_once():
    sets = yaml.safe_load((ROOT / "configs/miniworld_sepme.yaml").read_text())["sepme_sets"]
    drawn = [s for part in ("sepme_k1_k2", "sepme_k4")
             for s in yaml.safe_load((ROOT / "configs/parts" / f"{part}.yaml").read_text())["sepme_draw"]]
    assert sorted(drawn) == sorted(sets)


@pytest.mark.parametrize("part", sorted(p.stem for p in (ROOT / "configs/parts").glob("*.yaml")))
def test_a_part_config_plans_its_results(part, tmp_path):
    """A part runs as its recorded command says and writes its table under results/miniworld/parts/ (with
    the per-prompt counts a merge needs; a robustness part with its transfer table)."""
    override = tmp_path / "out.yaml"
    override.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "out")}))
    robustness = part.startswith("robustness")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--cores", "2",
                           "robustness_results" if robustness else "results",
                           "--configfile", *[str(ROOT / f) for f in part_configs(part)], str(override)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    written = "_transfer.md" if robustness else ".md" if part.startswith("sepme") else "_per_prompt.csv"
    assert f"results/miniworld/parts/{part}{written}" in proc.stdout


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs").glob("miniworld_*.yaml")))
def test_miniworld_results_config_plans(name, tmp_path):
    """Every committed mini-world table can be regenerated: its config validates and plans `results`."""
    override = tmp_path / "out.yaml"
    override.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "out")}))
    target = {"miniworld_sepme": "sepme_table", "miniworld_original": "original_table",
              "miniworld_robustness": "robustness_results"}.get(name, "results")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--cores", "2", target,
                           "--configfile", str(ROOT / "configs" / f"{name}.yaml"), str(override)],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert ("rule replay:" if name == "miniworld_robustness" else "rule generate:") in proc.stdout


def test_a_rule_takes_its_threads_from_resources(tmp_path):
    """resources.<rule>.threads sets a job's threads: the original-model table's one generate job asks for 2
    (two drawing processes); without an override a generate job asks for 1 (Snakemake prints no threads line)."""
    def generate_job(*config_args):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--cores", "2", *config_args,
                               "--config", f"out_dir={tmp_path / 'out'}"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return re.search(r"^rule generate:\n((?:    .*\n)*)", proc.stdout, flags=re.M).group(1)

    # the table's input, not the committed table itself: Snakemake may call a committed file up to date
    assert "    threads: 2\n" in generate_job(str(tmp_path / "out/report/per_prompt.csv"), "--configfile",
                                            str(ROOT / "configs/miniworld_original.yaml"))
    assert "threads:" not in generate_job("all")
