"""The config: the schema as the one source of defaults, files merged as Snakemake merges them, and every
task config runnable by a stage on its own. (Bad values and their messages: tests/test_bad_inputs.py.)"""
import ast
import json
import re
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, default_config, gcd_resources
from erasure.config import ConfigError, defaults, load_config, merge, read_config_files, schema
from erasure.io import slug

TASKS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def schema_keys(node):
    """Every key name the schema `node` defines, at any depth (methods' per-kind keys included)."""
    keys = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                keys |= set(value)
            keys |= schema_keys(value)
    elif isinstance(node, list):
        for value in node:
            keys |= schema_keys(value)
    return keys


def test_default_config_is_valid(tmp_path):
    config = load_config(default_config(tmp_path))
    assert config["generate"]["images_per_prompt"] >= 1 and config["methods"]["uce"]["tokens"] == "last"


def test_files_merge_over_config_yaml_as_snakemake_merges_them(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"generate": {"steps": 7}, "erase": ["star"]}))
    b.write_text(yaml.safe_dump({"generate": {"guidance": 2.0}, "methods": {"mine": {"kind": "uce"}}}))
    config = read_config_files([a, b])
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert config["generate"] == {"steps": 7, "guidance": 2.0}      # mappings merged key by key
    assert config["erase"] == ["star"]                               # anything else replaced
    assert set(config["methods"]) == set(base["methods"]) | {"mine"}
    assert merge({"x": {"y": 1}}, {"x": 2}) == {"x": 2}


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml: not found"):
        read_config_files([tmp_path / "nowhere.yaml"])


def test_method_keys_follow_the_methods_kind(tmp_path):
    config = default_config(tmp_path)
    config["methods"]["cf"]["tokens"] = "last"      # a uce key on a realera method
    with pytest.raises(ConfigError, match=r"config field methods.cf: unknown key\(s\) \['tokens'\]"):
        load_config(config)
    config = default_config(tmp_path)
    config["methods"]["mine"] = {"kind": "sepme"}
    assert load_config(config)["methods"]["mine"] == {"kind": "sepme", "known": []}   # the kind's default


def test_config_yaml_sets_no_key_to_its_schema_default():
    """A value equal to the schema's default would be a second copy of it, free to drift."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    repeated = [f"{section}.{key}" for section, values in base.items() if isinstance(values, dict) and section != "methods"
                for key, value in values.items() if defaults(section).get(key, object()) == value]
    top = defaults()
    repeated += [key for key, value in base.items() if not isinstance(value, dict) and top.get(key, object()) == value]
    assert not repeated


def test_no_code_gives_a_schema_key_a_default_of_its_own():
    """`x.get("steps", 10)` or `setdefault("eta", 0)` for a schema key would be a second default."""
    keys = schema_keys(schema())
    found = []
    files = [*(ROOT / "erasure").glob("*.py"), *(ROOT / "stages").glob("*.py"), *(ROOT / "workflow/rules").glob("*.smk")]
    for path in files:
        text = path.read_text()
        tree = ast.parse(text) if path.suffix == ".py" else None
        calls = ast.walk(tree) if tree else []
        for node in calls:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "setdefault") and len(node.args) == 2
                    and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys):
                found.append(f"{path.name}:{node.lineno} {node.args[0].value}")
        if not tree:   # Snakemake rule files are not plain Python: read them as text
            found += [f"{path.name}: {m}" for m in re.findall(r"\.(?:get|setdefault)\(\"(\w+)\", ", text) if m in keys]
    assert not found


def test_the_config_reference_is_in_sync_with_the_schema():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/config_reference.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    doc = (ROOT / "docs/config.md").read_text()
    assert "| `generate.steps` | integer | `25` |" in doc and "| `methods.<name>.tokens` |" in doc


def every_description_missing(node, path=""):
    missing = []
    for key, spec in node.get("properties", {}).items():
        if isinstance(spec, dict):
            missing += [f"{path}{key}"] * ("description" not in spec)
            missing += every_description_missing(spec, f"{path}{key}.")
    return missing


def test_every_schema_key_is_described():
    assert not every_description_missing(schema())


@pytest.mark.parametrize("task", TASKS)
def test_a_stage_runs_every_task_config_on_its_own(task, tmp_path, tiny_sd, tiny_sdxl, tiny_flux):
    """`stages/<stage>.py --config configs/<task>.yaml` derives the same parameters Snakemake would pass
    (--print-params stops before any work); a second --config carries what a site sets."""
    site = {"out_dir": str(tmp_path / "out")}
    if task.startswith(("sd_", "sdxl_", "flux_")):
        site["sd"] = {"model": str({"sdxl": tiny_sdxl, "flux": tiny_flux}.get(task.split("_")[0], tiny_sd))}
    if task.endswith("celebrities"):
        gcd_resources(tmp_path / "gcd", ROOT / "data/sd/celebrities.json")
        site["scorer"] = {"gcd_python": sys.executable, "gcd_resources": str(tmp_path / "gcd")}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    config = read_config_files([ROOT / "configs" / f"{task}.yaml", tmp_path / "site.yaml"])
    method = next((m for m in config["run_methods"] if m != "original"), "original")
    concept = slug(config["erase"][0])
    # the report stage: it loads no model, so the check costs no torch import
    proc = subprocess.run([sys.executable, str(ROOT / "stages/report.py"), "--config", str(ROOT / "configs" / f"{task}.yaml"),
                           "--config", str(tmp_path / "site.yaml"), "--scores-dir", "s", "--remap-dir", "r", "--out", "o",
                           "--print-params"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from erasure import params
    loaded = load_config(config)
    assert json.loads(proc.stdout) == json.loads(json.dumps(params.report(loaded)))
    for derive in (lambda c: params.generate(c, method), params.score, lambda c: params.remap(c, concept)):
        assert derive(loaded)  # every stage's parameters derive from the merged task config
    if method != "original" and config["methods"][method]["kind"] == "realera":
        assert params.closed_form(loaded, method, concept)["concept"] == config["erase"][0]


@pytest.mark.parametrize("name", ["../../etc", "a/b", "it's", "$(rm -rf ~)", "two words", "Amélie"])
def test_slugs_are_safe_and_distinct(name):
    s = slug(name)
    assert s.replace("-", "").replace("_", "").isalnum() and s.isascii()
    assert s != slug(name + "x")


def test_importing_the_package_turns_the_hub_offline_before_diffusers_loads():
    """A stage never tries the network: the offline flag is set by `import erasure`, before any stage
    imports huggingface_hub (which reads it once). An explicit HF_HUB_OFFLINE=0 still wins."""
    import os
    import subprocess
    import sys
    code = "import erasure, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    said = [subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True).stdout.strip()
            for e in (env, {**env, "HF_HUB_OFFLINE": "0"})]
    assert said == ["True", "False"]


def test_an_extra_prompt_csv_is_parsed_once_and_again_when_it_changes(tmp_path):
    from erasure import prompts
    path = tmp_path / "extra.csv"
    path.write_text("concept,prompt,seed,kind\nheart,a red heart,1,erase\n")
    first = prompts.read_extra_prompts(path)
    first[0]["prompt"] = "changed by a caller"           # callers get copies: the cache stays intact
    assert prompts.read_extra_prompts(path)[0]["prompt"] == "a red heart"
    hits = prompts._parse_extra_prompts.cache_info().hits
    prompts.read_extra_prompts(path)
    assert prompts._parse_extra_prompts.cache_info().hits == hits + 1
    path.write_text("concept,prompt,seed,kind\nheart,a big red heart,2,erase\n")
    assert prompts.read_extra_prompts(path)[0]["prompt"] == "a big red heart"
