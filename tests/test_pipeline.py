"""The Snakemake DAG on the mini world: a complete small run, then what each kind of change reruns.

The run happens in a copy of the repository, so the edits that test reruns never touch the working tree."""
import copy
import csv
import html
import itertools
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from conftest import ROOT, forked_stages_env, miniworld_config, run_stage, write_config

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--nolock", "--cores", "2"]
# The complete run writes under an out_dir that would inject a command into any unquoted shell line
# (issue 25's): it must run the DAG, land every file under that directory, and run nothing else.
HOSTILE_OUT = "out dir --help;touch PWNED;#"
CODE = ["Snakefile", "config.yaml", "workflow", "stages", "erasure", "data/miniworld"]


def snakemake(configfile, *args, repo=ROOT):
    # Targets and flags go before --configfile, which takes every value after it. The package is
    # imported from `repo`, so a copy runs (and is planned with) its own code.
    return subprocess.run([*SNAKEMAKE, *args, "--configfile", str(configfile)], cwd=repo, capture_output=True,
                          text=True, env=forked_stages_env(PYTHONPATH=str(repo)))


def copy_repo(dest):
    """The code and data a run needs, copied with their timestamps (outputs stay newer than their code)."""
    for name in CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def planned_rules(configfile, repo=ROOT):
    """The rules a dry run would execute (from its job-stats table)."""
    proc = snakemake(configfile, "-n", repo=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if "Nothing to be done" in proc.stdout + proc.stderr:
        return set()
    table = (proc.stdout + proc.stderr).split("Job stats:")[1]
    return set(re.findall(r"^(\w+)\s+\d+\s*$", table, flags=re.M)) - {"total"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(tmp, config, config path, repository copy) of a complete run of RealEra's Table 3 variants."""
    tmp = tmp_path_factory.mktemp("pipeline")
    repo = copy_repo(tmp / "repo")
    config = miniworld_config(tmp, run_methods=["original", "cf", "cf_na", "cf_na_mine", "realera"])  # Table 3
    config["export"]["methods"] = ["realera"]   # one export keeps the rule in the rerun tests; tests/test_export.py checks them
    config["miniworld"]["weights"] = str(shutil.copytree(ROOT / "weights/miniworld", tmp / "weights"))
    config["out_dir"] = str(tmp / HOSTILE_OUT)
    path = write_config(tmp, config)
    proc = snakemake(path, "all", repo=repo)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp, config, path, repo


def test_a_hostile_out_dir_runs_nothing_and_holds_every_output(finished_run):
    tmp, _, _, repo = finished_run
    assert not any(p.name == "PWNED" for where in (tmp, repo, ROOT) for p in where.rglob("PWNED"))
    assert (tmp / HOSTILE_OUT / "report" / "summary.csv").is_file()
    assert not (tmp / "out").exists() and not (tmp / "out dir").exists()


def test_report_has_the_papers_columns(finished_run):
    tmp, config, _, _ = finished_run
    with open(tmp / HOSTILE_OUT / "report/summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"method", "concept", "acc_e", "acc_s", "acc_g", "h_o", "n_images"} <= set(rows[0])
    assert {(r["method"], r["concept"]) for r in rows} >= {("original", "heart"), ("cf", "heart"), ("realera", "heart")}
    assert (tmp / HOSTILE_OUT / "report/index.html").read_text().count("<img") >= 3
    table = (tmp / HOSTILE_OUT / "report/table.md").read_text()
    assert "| realera |" in table and "COCO-30k" not in table   # no COCO captions in the mini world
    sources = re.findall(r"<img src='([^']+)'", (tmp / HOSTILE_OUT / "report/index.html").read_text())
    assert "plots/accuracy_heart.png" in sources and all((tmp / HOSTILE_OUT / "report" / s).is_file() for s in sources)


BROWSERS = ("chromium", "chromium-headless-shell")   # Debian's; .ci/run installs the second when neither is there
CHECK_IMAGES = """<script>window.addEventListener("load", () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src);
  document.body.setAttribute("data-check", JSON.stringify({images: document.images.length, broken: broken,
    tables: document.querySelectorAll("table").length, rows: document.querySelectorAll("tr").length}));
});</script>"""


def browser(*args):
    """Headless Chromium on a local page (root needs --no-sandbox); skips where no browser is installed."""
    found = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if not found:
        pytest.skip(f"no headless browser ({' or '.join(BROWSERS)}); .ci/run installs one with apt-get")
    proc = subprocess.run([found, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_report_page_opens_in_a_browser_with_every_image_and_table(finished_run, tmp_path):
    import json
    tmp, config, _, _ = finished_run
    page = shutil.copytree(tmp / HOSTILE_OUT / "report", tmp_path / "report")
    checked = page / "checked.html"   # index.html with a script that reports what the browser loaded
    checked.write_text((page / "index.html").read_text().replace("</body>", CHECK_IMAGES + "</body>"))
    dom = browser("--dump-dom", checked.as_uri())
    result = json.loads(html.unescape(re.search(r'data-check="([^"]*)"', dom).group(1)))
    methods, concepts = config["run_methods"], config["erase"]
    assert result["broken"] == [] and result["images"] >= len(concepts) + len(methods)
    assert result["tables"] == 1 and result["rows"] == 1 + len(methods) * (len(concepts) + 1)   # + the averages
    screenshot = tmp_path / "report.png"
    browser(f"--screenshot={screenshot}", "--window-size=1400,2400", (page / "index.html").as_uri())
    with Image.open(screenshot) as im:
        assert im.size == (1400, 2400) and len(im.convert("L").getcolors(1 << 16) or range(99)) > 16


def test_snakemakes_report_holds_every_marked_output(finished_run):
    import zipfile
    tmp, config, path, repo = finished_run
    proc = snakemake(path, "--report", str(tmp / "report.zip"), repo=repo)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with zipfile.ZipFile(tmp / "report.zip") as z:
        names = z.namelist()
        text = "".join(z.read(n).decode("utf-8", "replace") for n in names if n.endswith((".js", ".html")))
    marked = ["summary.csv", "per_prompt.csv", "accuracy_heart.png", "original_all.png", "realera_heart.png",
              "audit.md"]
    assert all(any(n.endswith(m) for n in names) for m in marked), names
    assert "Accuracy per prompt" in text and "Mining" in text   # subcategories and categories
    assert "a row per prompt" in text                               # a caption


def test_the_four_table3_variants_give_different_weights(finished_run):
    from erasure.edits import apply_edit
    from erasure.world import load_miniworld
    tmp, config, _, _ = finished_run
    out = tmp / HOSTILE_OUT
    weights = {}
    for method in ("cf", "cf_na", "cf_na_mine", "realera"):
        lora = out / "lora" / method / "heart"
        world = apply_edit(load_miniworld(config["miniworld"]["weights"]), out / "edit" / method / "heart.safetensors",
                           lora if config["methods"][method]["lora"] else None)
        weights[method] = torch.cat([p.flatten() for p in world.unet.parameters()])
    for a, b in itertools.combinations(weights, 2):
        assert not torch.equal(weights[a], weights[b]), f"{a} and {b} have the same weights"


def test_the_stages_run_again_by_hand_give_identical_bytes(finished_run, tmp_path):
    """The full method's chain (mine, closed form, LoRA, generate), run again from scratch by its stage
    CLIs with --config, writes byte-identical files to the DAG's (which passed --params): the same config
    gives the same outputs, and a stage run alone derives exactly the Snakefile's parameters."""
    import hashlib
    tmp, _, path, _ = finished_run
    out, again = tmp / HOSTILE_OUT, tmp_path
    common = ["--config", path, "--concept", "heart"]
    run_stage("mine", *common, "--sampler", "paper", "--out", again / "mine.safetensors")
    run_stage("closed_form", *common, "--method", "realera", "--embeddings", again / "mine.safetensors",
              "--out", again / "edit.safetensors")
    run_stage("train_lora", *common, "--method", "realera", "--deltas", again / "edit.safetensors",
              "--embeddings", again / "mine.safetensors", "--out", again / "lora/pytorch_lora_weights.safetensors")
    run_stage("generate", *common, "--method", "realera", "--deltas", again / "edit.safetensors",
              "--lora", again / "lora", "--out", again / "images/heart.csv")

    def digest(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()
    pairs = [(out / "mine/paper/heart.safetensors", again / "mine.safetensors"),
             (out / "edit/realera/heart.safetensors", again / "edit.safetensors"),
             (out / "lora/realera/heart/pytorch_lora_weights.safetensors", again / "lora/pytorch_lora_weights.safetensors")]
    assert all(digest(a) == digest(b) for a, b in pairs)
    dag_images = {p.name: digest(p) for p in out.glob("images/realera/heart-*/*.png")}
    with open(out / "images/realera/heart.csv") as f:
        assert len(dag_images) == len(list(csv.DictReader(f))) > 0   # every image of the DAG's manifest
    assert {p.name: digest(p) for p in again.glob("images/heart-*/*.png")} == dag_images


def test_nothing_to_do_after_a_complete_run(finished_run):
    _, _, path, repo = finished_run
    assert planned_rules(path, repo) == set()


def test_generation_change_reruns_generate_score_report(finished_run):
    tmp, config, _, repo = finished_run
    changed = copy.deepcopy(config)
    changed["generate"]["steps"] += 1
    assert planned_rules(write_config(tmp, changed, "gen.yaml"), repo) == {"generate", "score", "report", "export", "all"}


def test_mining_change_reruns_from_mine(finished_run):
    tmp, config, _, repo = finished_run
    changed = copy.deepcopy(config)
    changed["mining"]["d1"] = 0.5
    assert planned_rules(write_config(tmp, changed, "mine.yaml"), repo) == {
        "mine", "audit", "closed_form", "train_lora", "generate", "score", "remap", "report", "export", "all"}


# Which rules an edit of one source file reruns (with what follows them), in the run's DAG.
EDITS = {
    "stages/score.py": {"score", "report", "export", "all"},
    "erasure/oracle.py": {"score", "report", "export", "all"},              # the scorer's labels
    "erasure/report.py": {"report", "export", "all"},
    "erasure/audit.py": {"audit", "all"},
    "erasure/model_card.py": {"export", "all"},
    "erasure/uce.py": {"closed_form", "train_lora", "generate", "score", "remap", "report", "export", "all"},
    # the LoRA stage, and what reads LoRAs (generate and remap) and their images
    "erasure/lora.py": {"train_lora", "generate", "remap", "score", "report", "export", "all"},
    "erasure/sampling.py": {"train_lora", "generate", "remap", "score", "report", "export", "all"},
}


@pytest.mark.parametrize("source", EDITS)
def test_editing_a_source_file_reruns_exactly_what_imports_it(finished_run, source):
    # A real edit, in the run's copy of the repository: Snakemake ignores a newer mtime when the file's
    # checksum is unchanged.
    _, _, path, repo = finished_run
    edited = repo / source
    text, stat = edited.read_text(), edited.stat()
    try:
        edited.write_text(text + "\n# edited by test_pipeline\n")
        assert planned_rules(path, repo) == EDITS[source]
    finally:
        edited.write_text(text)
        os.utime(edited, (stat.st_atime, stat.st_mtime))


def test_retrained_weights_rerun_what_loads_them(finished_run):
    from safetensors.torch import load_file, save_file
    tmp, _, path, repo = finished_run
    expected = {"oracle": {"score", "report", "export", "all"},
                "unet": {"closed_form", "train_lora", "generate", "score", "remap", "report", "export", "all"}}
    for name, rules in expected.items():
        weights = tmp / "weights" / f"{name}.safetensors"
        data, stat = weights.read_bytes(), weights.stat()
        try:  # the same tensors under new metadata: new bytes, as a retrained file would have
            save_file(load_file(weights), weights, metadata={"retrained": "yes"})
            assert planned_rules(path, repo) == rules
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


@pytest.mark.slow   # a second whole DAG (about 60 s idle); tests/test_sepme.py checks the parts in make test
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
    for r in rows:   # each accuracy inside its Wilson interval; H_o with its bootstrap one, none when restored
        for key in ("acc_e", "acc_g", "acc_s"):
            assert float(r[f"{key}_lo"]) <= float(r[key]) <= float(r[f"{key}_hi"]), (r, key)
        assert (r["h_o"] == r["h_o_lo"] == "-") if r["role"] == "restored" else float(r["h_o_lo"]) <= float(r["h_o_hi"])
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
    # one part of the table (sepme_draw): only that set's rows, from the same scores
    config["sepme_draw"] = ["k1"]
    proc = snakemake(write_config(tmp_path, config), "sepme_table")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "out/report/sepme.csv") as f:
        assert {(r["set"], r["model"], r["concept"]) for r in csv.DictReader(f)} == {("k1", "all", "heart")}
