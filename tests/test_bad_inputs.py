"""Every bad input in docs/bad_inputs.md: each gives exactly the one-line message the doc lists.

Regenerate the doc's table after changing a message:  .venv/bin/python tests/test_bad_inputs.py
"""
import json
import re
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import ROOT, default_config, gcd_resources, run_stage, write_config  # noqa: E402
from erasure import embedding_set  # noqa: E402
from erasure.config import ConfigError, load_config  # noqa: E402

DOC = ROOT / "docs" / "bad_inputs.md"


def config_error(tmp, change):
    config = default_config(tmp)
    change(config, tmp)
    try:
        load_config(config)
    except ConfigError as e:
        return str(e)
    return "(accepted)"


class ConfigCase:
    """A bad config made by change(config, tmp) from the default one; called, it returns load_config's message."""

    def __init__(self, change):
        self.change = change

    def __call__(self, tmp):
        return config_error(tmp, self.change)


def set_value(*path_value):
    *path, value = path_value

    def change(config, tmp):
        target = config
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def mace_without_ridge(config, tmp):
    config["run_methods"] = ["original", "mace"]
    config["mace"] = {"lamb": 0}


def extra_csv(content):
    def change(config, tmp):
        (tmp / "extra.csv").write_text(content)
        config["extra_prompts"] = [str(tmp / "extra.csv")]
    return change


def attack_prompts(content):
    def change(config, tmp):
        (tmp / "attack_prompts.csv").write_text(content)
        config["attacks"]["prompts_file"] = str(tmp / "attack_prompts.csv")
    return change


def concepts_file(content):
    def change(config, tmp):
        (tmp / "concepts.json").write_text(content)
        config["concepts_file"] = str(tmp / "concepts.json")
    return change


def sd_model(make):
    def change(config, tmp):
        config["world"] = "sd"
        config["sd"]["model"] = make(tmp)
    return change


def diffusers_dir(tmp, pipeline="StableDiffusionPipeline"):
    (tmp / "model").mkdir()
    (tmp / "model" / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    return str(tmp / "model")


def on_flux(run_methods, *settings):
    """The default config on a Flux model (a FluxPipeline directory), with these run_methods and settings."""
    def change(config, tmp):
        sd_model(lambda t: diffusers_dir(t, "FluxPipeline"))(config, tmp)
        config["run_methods"] = run_methods
        for section, key, value in settings:
            config[section][key] = value
    return change


def coco_fid(reference_dir, inception_dir):
    def change(config, tmp):
        sd_model(diffusers_dir)(config, tmp)
        config["coco"] = {"enabled": True, "reference_dir": reference_dir, "inception_dir": inception_dir}
    return change


def not_diffusers(tmp):
    (tmp / "model").mkdir()
    return str(tmp / "model")


def embedding_error(tmp, corrupt):
    path = tmp / "set.safetensors"
    tensors = {"p0.erase": torch.zeros(4, 8), "p0.anchor": torch.zeros(4, 8), "p0.beyond": torch.zeros(3, 4, 8)}
    meta = {"num_prompts": 1}
    corrupt(tensors, meta)
    save_file(tensors, path)
    if meta is not None:
        path.with_suffix(".json").write_text(json.dumps(meta))
    if "truncate" in meta:
        path.write_bytes(path.read_bytes()[:40])
        path.with_suffix(".json").write_text(json.dumps({"num_prompts": 1}))
    try:
        embedding_set.load(path)
    except ValueError as e:
        return str(e)
    return "(accepted)"


def set_tensor(key, value):
    return lambda tensors, meta: tensors.__setitem__(key, value)


def no_sidecar(tmp):
    path = tmp / "set.safetensors"
    save_file({"p0.erase": torch.zeros(4, 8), "p0.anchor": torch.zeros(4, 8)}, path)
    try:
        embedding_set.load(path)
    except ValueError as e:
        return str(e)


def stage_error(*args):
    def run(tmp):
        proc = run_stage(*[a(tmp) if callable(a) else a for a in args], check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        return lines[-1]
    return run


def run_error(make_config, target="prompts.csv"):
    """A whole `snakemake` run (not a dry run) on the config make_config(tmp) writes: it must stop before
    any job, with its one line and no traceback; returns that line."""
    def run(tmp):
        import subprocess
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "1", f"{tmp}/out/{target}",
                               "--configfile", make_config(tmp)], cwd=ROOT, capture_output=True, text=True)
        said = (proc.stdout + proc.stderr).splitlines()
        assert proc.returncode != 0 and "Traceback" not in "\n".join(said), "\n".join(said[-30:])
        return said[next(i for i, line in enumerate(said) if line.startswith("WorkflowError")) + 1]
    return run


def gcd_without(celebrity):
    """The celebrity task scored by a GCD whose labels.csv lacks `celebrity`."""
    def change(config, tmp):
        resources = gcd_resources(tmp / "gcd", ROOT / "data/sd/celebrities.json")
        labels = resources / "face_recognition/labels.csv"
        labels.write_text("".join(line for line in labels.read_text().splitlines(keepends=True)
                                  if not line.startswith(celebrity.replace(" ", "_") + ",")))
        gcd_scorer(sys.executable, str(resources))(config, tmp)
        config.update(concepts_file=str(ROOT / "data/sd/celebrities.json"), erase=[celebrity],
                      prompt_template="A portrait of {}", anchor="a person")
    return change


def write_embedding(tmp):
    path = tmp / "set.safetensors"
    save_file({"p0.erase": torch.full((4, 384), float("nan")), "p0.anchor": torch.zeros(4, 384)}, path)
    path.with_suffix(".json").write_text(json.dumps({"num_prompts": 1}))
    return str(path)


def gcd_scorer(python, resources):
    def change(config, tmp):
        sd_model(diffusers_dir)(config, tmp)
        config["scorer"].update(kind="gcd", gcd_python=python, gcd_resources=resources)
    return change


def builtin_repeat(config, tmp):
    """An extra CSV row that repeats the canonical heart prompt at the run's seed."""
    prompt = config["prompt_template"].format("heart")
    extra_csv(f"concept,prompt,seed,kind\nheart,{prompt},{config['seed']},erase\n")(config, tmp)


def latin1_csv(config, tmp):
    (tmp / "extra.csv").write_bytes("concept,prompt,seed,kind\nheart,a c\u0153ur heart,1,erase\n".encode("cp1252"))
    config["extra_prompts"] = [str(tmp / "extra.csv")]


def corrupt_manifest(tmp):
    (tmp / "bad.png").write_bytes(b"not a png")
    (tmp / "images.csv").write_text(f"id,concept,kind,prompt,seed,file\n0,heart,erase,a heart,0,{tmp / 'bad.png'}\n")
    return str(tmp / "images.csv")


def nudenet_erasing(names):
    def change(config, tmp):
        sd_model(diffusers_dir)(config, tmp)
        concepts = {n: {"name": n, "synonyms": [n], "associated": [{"prompt": f"a photo of {n}"}]} for n in names}
        (tmp / "concepts.json").write_text(json.dumps({"concepts": concepts}))
        config.update(concepts_file=str(tmp / "concepts.json"), erase=names, anchor="a photo")
        config["scorer"]["kind"] = "nudenet"
    return change


def long_prompt_config(tmp):
    """A run whose extra erase prompt puts the concept word past the text encoder's 16 tokens."""
    config = default_config(tmp)
    (tmp / "extra.csv").write_text("concept,prompt,seed,kind\nheart," + "a very " * 8 + "big heart,1,erase\n")
    config["extra_prompts"] = [str(tmp / "extra.csv")]
    return str(write_config(tmp, config))


CONCEPTS_OK = json.loads((ROOT / "data/miniworld/concepts.json").read_text())

# (id, what is wrong, how to produce the message from a temporary directory)
CASES = [
    ("seed-type", "`seed: zero`", ConfigCase(set_value("seed", "zero"))),
    ("pretrain-init-missing", "`pretrain.unet.init_from` names no file",
     ConfigCase(lambda config, tmp: config.setdefault("pretrain", {}).setdefault("unet", {}).update(
         init_from=str(tmp / "no_unet.safetensors")))),
    ("seed-negative", "`seed: -1`", ConfigCase(set_value("seed", -1))),
    ("seed-overflow", "`seed: 2**70` (torch takes seeds below 2**64)", ConfigCase(set_value("seed", 2 ** 70))),
    ("erase-duplicate", "`erase: [heart, heart]`", ConfigCase(set_value("erase", ["heart", "heart"]))),
    ("method-duplicate", "`run_methods: [original, cf, cf]`",
     ConfigCase(set_value("run_methods", ["original", "cf", "cf"]))),
    ("images-huge", "`generate.images_per_prompt: 1000000000000`",
     ConfigCase(set_value("generate", "images_per_prompt", 10 ** 12))),
    ("world", "`world: sdxl`", ConfigCase(set_value("world", "sdxl"))),
    ("unknown-top-key", "a misspelt top-level key `erase_concepts`",
     ConfigCase(set_value("erase_concepts", ["heart"]))),
    ("unknown-nested-key", "`mining.radius: 1` (no such key)", ConfigCase(set_value("mining", "radius", 1))),
    ("d1-negative", "`mining.d1: -0.5`", ConfigCase(set_value("mining", "d1", -0.5))),
    ("s1-range", "`mining.s1: 1.5`", ConfigCase(set_value("mining", "s1", 1.5))),
    ("d2-below-d1", "`mining.d2` not above `mining.d1`", ConfigCase(set_value("mining", "d2", 0.5))),
    ("s2-above-s1", "`mining.s2` above `mining.s1`", ConfigCase(set_value("mining", "s2", 0.9999))),
    ("num-neighbors", "`mining.num_neighbors: 2.5`", ConfigCase(set_value("mining", "num_neighbors", 2.5))),
    ("ridge-zero", "`closed_form.ridge: 0`", ConfigCase(set_value("closed_form", "ridge", 0))),
    ("lora-steps", "`lora.steps: 0`", ConfigCase(set_value("lora", "steps", 0))),
    ("shards-zero", "`shards: 0` (each image set in no job)", ConfigCase(set_value("shards", 0))),
    ("images-zero", "`generate.images_per_prompt: 0`",
     ConfigCase(set_value("generate", "images_per_prompt", 0))),
    ("guidance-type", "`generate.guidance: high`", ConfigCase(set_value("generate", "guidance", "high"))),
    ("eta-range", "`generate.eta: 2`", ConfigCase(set_value("generate", "eta", 2))),
    ("sampler-eta", "`generate.sampler: euler_a` with the default `generate.eta: 1` (only DDIM takes eta)",
     ConfigCase(set_value("generate", "sampler", "euler_a"))),
    ("sampler-unknown", "`generate.sampler: ddpm`", ConfigCase(set_value("generate", "sampler", "ddpm"))),
    ("esd-lr", "`esd.lr: 0`", ConfigCase(set_value("esd", "lr", 0))),
    ("guidance-nan", "`generate.guidance: .nan`", ConfigCase(set_value("generate", "guidance", float("nan")))),
    ("reg-weight-inf", "`closed_form.reg_weight: .inf`",
     ConfigCase(set_value("closed_form", "reg_weight", float("inf")))),
    ("anchor-is-erased", "`anchor: a heart` while erasing heart", ConfigCase(set_value("anchor", "a heart"))),
    ("out-dir-root", "`out_dir: /`", ConfigCase(set_value("out_dir", "/"))),
    ("out-dir-file", "`out_dir` naming an existing file", ConfigCase(set_value("out_dir", str(ROOT / "config.yaml")))),
    ("out-dir-control", "`out_dir` with a newline in it", ConfigCase(set_value("out_dir", "out\nput"))),
    ("splits-empty", "`generate.splits: []` (no held-out half to draw)",
     ConfigCase(set_value("generate", "splits", []))),
    ("splits-unknown", "`generate.splits: [test]`", ConfigCase(set_value("generate", "splits", ["test"]))),
    ("frontier-method", "`report.frontier` naming a method the run does not draw",
     ConfigCase(set_value("report", "frontier", {"reg": ["cf", "magic"]}))),
    ("attack-unknown", "`attacks.run: [jailbreak]`", ConfigCase(set_value("attacks", "run", ["jailbreak"]))),
    ("attack-method", "`attacks.methods` naming a method the run does not build",
     ConfigCase(set_value("attacks", "methods", ["original", "uce"]))),
    ("export-method", "`export.methods: [original]` (the unedited model has no edit to export)",
     ConfigCase(set_value("export", "methods", ["original"]))),
    ("attack-prompts-missing", "`attacks.prompts_file` that does not exist",
     ConfigCase(set_value("attacks", "prompts_file", "/nonexistent/attack_prompts.csv"))),
    ("attack-prompts-concept", "an attack prompt CSV row for an unknown concept",
     ConfigCase(attack_prompts("concept,prompt\nunicorn,a unicorn\n"))),
    ("attack-prompts-columns", "an attack prompt CSV with a `seed` column",
     ConfigCase(attack_prompts("concept,prompt,seed\nheart,a valentine,1\n"))),
    ("attack-template", "`attacks.templates: [\"a {} and a {}\"]` (two names)",
     ConfigCase(set_value("attacks", "templates", ["a {} and a {}"]))),
    ("attack-init-word", "`attacks.inversion.init_word: heart` while erasing heart",
     ConfigCase(set_value("attacks", "inversion", "init_word", "heart"))),
    ("attack-steps", "`attacks.inversion.steps: 0`", ConfigCase(set_value("attacks", "inversion", "steps", 0))),
    ("attack-images", "`attacks.images_per_prompt: 20000` (seeds would overlap the next prompt's)",
     ConfigCase(set_value("attacks", "images_per_prompt", 20000))),
    ("template", "`prompt_template: a photo` (no `{}`)", ConfigCase(set_value("prompt_template", "a photo"))),
    ("erase-empty", "`erase: []`", ConfigCase(set_value("erase", []))),
    ("erase-unknown", "`erase: [unicorn]`", ConfigCase(set_value("erase", ["unicorn"]))),
    ("method-unknown", "`run_methods: [original, magic]`",
     ConfigCase(set_value("run_methods", ["original", "magic"]))),
    ("method-incomplete", "a realera-kind method without `lora`",
     ConfigCase(set_value("methods", "mine_only", {"mining": "paper", "regularization": "none"}))),
    ("rece-base", "`methods.rece.base: cf` (RECE starts from a UCE edit)",
     ConfigCase(set_value("methods", "rece", "base", "cf"))),
    ("revival-checkpoints", "`attacks.revival.checkpoints: [0]`",
     ConfigCase(set_value("attacks", "revival", "checkpoints", [0]))),
    ("method-kind", "`kind: magic` in a method", ConfigCase(set_value("methods", "cf", "kind", "magic"))),
    ("method-key-of-another-kind", "`tokens` (a uce key) on a realera-kind method",
     ConfigCase(set_value("methods", "cf", "tokens", "last"))),
    ("preserve-empty-lora", "`preserve: []` with a LoRA method that mines no beyond-concept samples (cf_na)",
     ConfigCase(set_value("preserve", []))),
    ("mace-singular", "`mace.lamb: 0` for a run of method mace with no preserved rows weighted (the defaults)",
     ConfigCase(mace_without_ridge)),
    ("config-file-missing", "a stage given a `--config` file that does not exist",
     stage_error("report", "--config", "/nonexistent/task.yaml", "--scores-dir", "s", "--remap-dir", "r",
                 "--out", lambda t: str(t / "report"))),
    ("sepme-set", "a SepME set with an unknown concept",
     ConfigCase(set_value("sepme_sets", {"k2": ["heart", "unicorn"]}))),
    ("sepme-draw", "`sepme_draw: [k3]`, a set `sepme_sets` does not define",
     ConfigCase(lambda config, tmp: config.update(sepme_sets={"k2": ["heart", "crescent"]}, sepme_draw=["k3"]))),
    ("resources-rule", "`resources.generat` (no such rule)",
     ConfigCase(set_value("resources", {"generat": {"mem_mb": 1000}}))),
    ("weights-missing", "`miniworld.weights` pointing nowhere",
     ConfigCase(set_value("miniworld", "weights", "/nonexistent/weights"))),
    ("concept-unscorable", "a mini-world concepts file with a concept the oracle cannot label",
     ConfigCase(concepts_file(json.dumps({"concepts": {**CONCEPTS_OK["concepts"], "unicorn": {
         "name": "unicorn", "synonyms": ["unicorn"], "associated": [{"prompt": "a horned horse"}]}}})))),
    ("concept-nudenet", "`erase: [nudity, church]` scored by NudeNet (it labels nudity only)",
     ConfigCase(nudenet_erasing(["nudity", "church"]))),
    ("concepts-missing", "`concepts_file` that does not exist",
     ConfigCase(set_value("concepts_file", "/nonexistent/concepts.json"))),
    ("concepts-json", "a concepts file that is not JSON", ConfigCase(concepts_file("{concepts: ["))),
    ("concepts-shape", "a concepts file whose `associated` is not a list",
     ConfigCase(concepts_file(json.dumps({"concepts": {"heart": {"name": "heart", "associated": "a valentine"}}})))),
    ("csv-missing", "an `extra_prompts` file that does not exist",
     ConfigCase(set_value("extra_prompts", ["/nonexistent/prompts.csv"]))),
    ("csv-columns", "a prompt CSV without the `kind` column", ConfigCase(extra_csv("concept,prompt,seed\nheart,a heart,1\n"))),
    ("csv-empty", "a prompt CSV with a header only", ConfigCase(extra_csv("concept,prompt,seed,kind\n"))),
    ("csv-kind", "a prompt CSV row with kind `forget`",
     ConfigCase(extra_csv("concept,prompt,seed,kind\nheart,a heart,1,forget\n"))),
    ("csv-seed", "a prompt CSV row with seed `x`", ConfigCase(extra_csv("concept,prompt,seed,kind\nheart,a heart,x,erase\n"))),
    ("csv-prompt", "a prompt CSV row with an empty prompt", ConfigCase(extra_csv("concept,prompt,seed,kind\nheart,,1,erase\n"))),
    ("csv-concept", "a prompt CSV row for an unknown concept",
     ConfigCase(extra_csv("concept,prompt,seed,kind\nunicorn,a unicorn,1,erase\n"))),
    ("concept-word", "an erase prompt without its concept word",
     ConfigCase(extra_csv("concept,prompt,seed,kind\nheart,a valentine,1,erase\n"))),
    ("csv-duplicate", "a prompt CSV row repeating another (same concept, kind, prompt and seed)",
     ConfigCase(extra_csv("concept,prompt,seed,kind\nheart,a red heart,1,erase\nheart,a red heart,1,erase\n"))),
    ("csv-duplicate-builtin", "a prompt CSV row repeating a built-in prompt", ConfigCase(builtin_repeat)),
    ("csv-unknown-column", "a prompt CSV with a column `weight` the pipeline does not read",
     ConfigCase(extra_csv("concept,prompt,seed,kind,weight\nheart,a heart,1,erase,2\n"))),
    ("csv-not-utf8", "a prompt CSV saved as Windows-1252", ConfigCase(latin1_csv)),
    ("csv-seed-range", "a prompt CSV row with seed `2**40`",
     ConfigCase(extra_csv(f"concept,prompt,seed,kind\nheart,a heart,{2 ** 40},erase\n"))),
    ("csv-images", "a prompt CSV row with images `0`",
     ConfigCase(extra_csv("concept,prompt,seed,kind,images\nheart,a heart,1,erase,0\n"))),
    ("gcd-python", "`scorer.kind: gcd` without the GCD environment's Python",
     ConfigCase(gcd_scorer("", ""))),
    ("gcd-resources", "`scorer.kind: gcd` without GCD's resources (labels, weights)",
     ConfigCase(gcd_scorer(sys.executable, "/nonexistent/gcd/resources"))),
    ("gcd-unlabelled", "a celebrity that GCD's labels.csv does not list (it could never be recognised)",
     ConfigCase(gcd_without("Mariah Carey"))),
    ("uce-preserve-scale", "`preserve_scale: lots` on a uce method (a number, auto or null)",
     ConfigCase(set_value("methods", "uce", "preserve_scale", "lots"))),
    ("i2p-concept", "`i2p.concept: unicorn` with I2P enabled",
     ConfigCase(set_value("i2p", {"enabled": True, "concept": "unicorn"}))),
    ("i2p-sha256", "`i2p.sha256: abc` (not a sha256)", ConfigCase(set_value("i2p", {"sha256": "abc"}))),
    ("coco-miniworld", "`coco.enabled: true` on the mini world",
     ConfigCase(set_value("coco", {"enabled": True}))),
    ("coco-reference", "`coco.reference_dir` a folder that does not exist",
     ConfigCase(coco_fid("/nonexistent/val2014", None))),
    ("coco-inception", "`coco.reference_dir` set, no Inception file in `coco.inception_dir`",
     ConfigCase(lambda config, tmp: coco_fid(str(tmp), str(tmp))(config, tmp))),
    ("sd-no-model", "`world: sd` without `sd.model`", ConfigCase(set_value("world", "sd"))),
    ("sd-missing-dir", "`sd.model` a directory that does not exist",
     ConfigCase(sd_model(lambda tmp: "/nonexistent/sd-v1-4"))),
    ("sd-hub-uncached", "`sd.model` a hub id that is not in the local cache (runs never download)",
     ConfigCase(sd_model(lambda tmp: "CompVis/stable-diffusion-v1-4"))),
    ("sd-not-diffusers", "`sd.model` a directory without `model_index.json`",
     ConfigCase(sd_model(not_diffusers))),
    ("sd-family", "`sd.model` a diffusers pipeline of a family not built yet (SD3)",
     ConfigCase(sd_model(lambda tmp: diffusers_dir(tmp, "StableDiffusion3Pipeline")))),
    ("flux-method", "a method not built for Flux (ESD, SPEED, MACE, AdaVD) on a Flux model",
     ConfigCase(on_flux(["original", "cf", "esd_x"]))),
    ("flux-eta", "`generate.eta` above 0 on a Flux model (its sampler is deterministic)",
     ConfigCase(on_flux(["original", "cf"], ("generate", "eta", 0.5)))),
    ("flux-sampler", "`generate.sampler` set on a Flux model",
     ConfigCase(on_flux(["original", "cf"], ("generate", "eta", 0.0), ("generate", "sampler", "unipc")))),
    ("flux-lora-export", "`export.lora_rank` on a Flux model",
     ConfigCase(on_flux(["original", "cf"], ("generate", "eta", 0.0), ("export", "lora_rank", 4)))),
    ("pooled-not-sdxl", "`closed_form.pooled: true` on a model without a pooled text embedding",
     ConfigCase(set_value("closed_form", "pooled", True))),
    ("emb-corrupt", "an embedding set truncated on disk",
     lambda t: embedding_error(t, lambda tensors, meta: meta.update(truncate=True))),
    ("emb-sidecar", "an embedding set without its JSON sidecar", no_sidecar),
    ("emb-shape", "an embedding set with a beyond tensor of the wrong width",
     lambda t: embedding_error(t, set_tensor("p0.beyond", torch.zeros(3, 4, 9)))),
    ("emb-nan", "an embedding set with NaN values",
     lambda t: embedding_error(t, set_tensor("p0.erase", torch.full((4, 8), float("nan"))))),
    ("emb-missing", "an embedding set without its erase tensor",
     lambda t: embedding_error(t, lambda tensors, meta: tensors.pop("p0.erase"))),
    ("stage-nan", "the closed-form stage given a NaN embedding set (no output is written)",
     stage_error("closed_form", "--config", str(ROOT / "config.yaml"), "--method", "cf", "--concept", "heart",
                 "--embeddings", write_embedding, "--out", lambda t: str(t / "deltas.safetensors"))),
    ("prompt-truncated", "an erase prompt whose concept word falls past the text encoder's 16 tokens (no image is drawn)",
     stage_error("generate", "--config", long_prompt_config, "--method", "original",
                 "--out", lambda t: str(t / "images" / "original.csv"))),
    ("prompt-truncated-run", "the same prompt in a `snakemake` run: stopped when the run starts, before any job",
     run_error(long_prompt_config)),
    ("score-corrupt-image", "the score stage given a manifest whose image does not decode",
     stage_error("score", "--config", str(ROOT / "config.yaml"), "--manifest", corrupt_manifest,
                 "--out", lambda t: str(t / "scores.csv"))),
    ("stage-params", "a stage given `--params` that is not JSON",
     stage_error("closed_form", "--params", "{not json", "--method", "cf", "--concept", "heart",
                 "--out", lambda t: str(t / "deltas.safetensors"))),
]


def message(case, tmp):
    text = case[2](tmp)
    return text.replace(str(tmp), "<tmp>").replace(str(ROOT) + "/", "")


def doc_rows():
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `([a-z0-9-]+)` \| (.*) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(3).replace("\\|", "|")
    return rows


def doc_cell(text):
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_the_documented_message(case, tmp_path):
    got = message(case, tmp_path)
    assert got != "(accepted)", f"{case[0]} was accepted"
    assert "\n" not in got
    assert doc_rows().get(case[0]) == doc_cell(got), f"{case[0]}: message is now\n{got}\n(rerun this file to regenerate)"
    assert not (tmp_path / "deltas.safetensors").exists() and not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("images/*/*.png"))


def test_the_doc_lists_every_case_and_at_least_30():
    assert set(doc_rows()) == {c[0] for c in CASES} and len(CASES) >= 30


if __name__ == "__main__":
    import tempfile
    lines = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            lines.append(f"| `{case[0]}` | {case[1]} | {doc_cell(message(case, Path(tmp)))} |")
    text = DOC.read_text(encoding="utf-8")
    start = text.index("| id |")
    end = text.index("\n\n", start)
    DOC.write_text(text[:start] + "| id | bad input | the one line you see |\n|---|---|---|\n" + "\n".join(lines) + text[end:],
                   encoding="utf-8")
    print(f"{len(lines)} rows written to {DOC}")


CONFIG_CASES = [c for c in CASES if isinstance(c[2], ConfigCase)]


@pytest.fixture(scope="module")
def snakemake_said(tmp_path_factory):
    """Snakemake's dry run on every bad config, all in one interpreter (tests/snakemake_batch.py):
    {case id: (its tmp directory, exit code, what Snakemake printed)}."""
    import subprocess
    dirs, configs = {}, []
    for case in CONFIG_CASES:
        tmp = dirs[case[0]] = tmp_path_factory.mktemp(case[0])
        config = default_config(tmp)
        case[2].change(config, tmp)
        configs.append(str(write_config(tmp, config, "bad.yaml")))
    out = tmp_path_factory.mktemp("said") / "said.json"
    subprocess.run([sys.executable, str(ROOT / "tests/snakemake_batch.py"), str(out), *configs], cwd=ROOT, check=True)
    said = json.loads(out.read_text())
    return {case[0]: (dirs[case[0]], run["exit"], run["output"]) for case, run in zip(CONFIG_CASES, said)}


@pytest.mark.slow
@pytest.mark.parametrize("case", CONFIG_CASES, ids=lambda c: c[0])
def test_snakemake_stops_on_each_bad_config_with_its_line_and_no_traceback(case, snakemake_said):
    tmp, code, said = snakemake_said[case[0]]
    expected = doc_rows()[case[0]].strip("`").replace("<tmp>", str(tmp))
    assert code != 0 and "Traceback" not in said, said[-2000:]

    def plain(text):   # the doc's cell: the repository's path left out, backticks as quotes
        return re.sub("['`]", "", text.replace(str(ROOT) + "/", ""))
    assert plain(expected) in plain(said), said[-2000:]


def test_a_full_disk_stops_a_stage_with_one_line_naming_the_file(tmp_path):
    import subprocess
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a 64 KiB tmpfs here (needs root)")
    try:
        proc = run_stage("mine", "--config", ROOT / "config.yaml", "--concept", "heart", "--sampler", "paper",
                         "--out", full / "set.safetensors", check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        line = proc.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"error: disk full writing {re.escape(str(full))}/set\.\w+ \(0\.\d MiB free there\); "
                            r"free some space or move out_dir to a larger disk, then rerun: finished outputs are kept",
                            line), line
        assert not [p for p in full.iterdir() if p.suffix == ".tmp"]   # no temp file left behind
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_hostile_concept_names_stay_inside_out_dir(tmp_path, tiny_sd):
    """Names with '/', '..', quotes, $(), spaces and non-ASCII reach no path or shell unquoted (on the
    tiny SD: the mini world's oracle would refuse concepts it cannot label)."""
    import subprocess
    names = ["../../evil", "'$(touch pw)", "Amélie Poulain"]   # the worst fits the tiny SD's 16 tokens
    full = json.loads((ROOT / "data/miniworld/concepts.json").read_text())
    concepts = {n: {"name": n, "synonyms": [n], "associated": [{"prompt": "a drawing"}]} for n in names}
    concepts["heart"] = full["concepts"]["heart"]
    (tmp_path / "concepts.json").write_text(json.dumps({"templates": ["{name}"], "concepts": concepts}))
    config = default_config(tmp_path)
    config.update(concepts_file=str(tmp_path / "concepts.json"), erase=names, run_methods=["original", "cf"],
                  world="sd")
    config["sd"]["model"] = str(tiny_sd)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--nolock", "--cores", "1", "-n", "all",
                           "--configfile", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = re.findall(r"output: (.*)", proc.stdout)
    files = [f.strip() for line in outputs for f in line.split(",")]
    assert files and all(f.startswith(str(tmp_path / "out")) and ".." not in f and "$" not in f and "'" not in f
                         for f in files), files
    # one real stage run with the worst name: its output lands where the DAG said
    from erasure.io import slug
    out = tmp_path / "out" / "mine" / "none" / f"{slug(names[1])}.safetensors"
    run_stage("mine", "--config", path, "--concept", slug(names[1]), "--sampler", "none", "--out", out)
    assert out.is_file() and not (ROOT / "pw").exists() and not (tmp_path / "pw").exists()
