"""Configuration: schema validation, the concept table, evaluation prompts and safe file names.

Both the Snakefile and the stage CLIs call `load_config`, so a bad value gives the same single clear
error whichever way the pipeline is started, before any work begins.
"""
import csv
import hashlib
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
PROMPT_KINDS = ("erase", "preserve", "associated", "coco")
BUILTIN_METHODS = ("original",)


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and the fix."""


def slug(name):
    """A file-safe name for untrusted text: [a-z0-9_-] only, plus a short hash whenever characters were
    changed so that different names never share a file."""
    text = str(name)
    safe = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:48] or "concept"
    if safe != text:
        safe += "-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:6]
    return safe


def _fill_defaults(schema, config):
    """Fill defaults of object properties recursively (jsonschema does not)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in config and "default" in sub:
            config[key] = json.loads(json.dumps(sub["default"]))
        if isinstance(config.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(sub, config[key])
            if isinstance(sub.get("additionalProperties"), dict):  # maps of named entries (methods)
                for entry in config[key].values():
                    if isinstance(entry, dict):
                        _fill_defaults(sub["additionalProperties"], entry)


def validate(config):
    """Validate against the JSON schema; fill defaults; raise ConfigError naming the first bad field."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.path) or "(top level)"
        if err.validator == "additionalProperties":
            unknown = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            raise ConfigError(f"config field {field}: unknown key(s) {unknown}; "
                              f"allowed: {sorted(err.schema.get('properties', {}))}")
        raise ConfigError(f"config field {field}: {err.message}")
    _fill_defaults(schema, config)
    return config


def load_concepts(path):
    """{name: {"name", "synonyms", "associated": [{"prompt", ...}]}} from a concepts JSON file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field concepts_file: no such file {path}")
    try:
        data = json.loads(path.read_text())
        concepts = data["concepts"]
        for name, c in concepts.items():
            if not isinstance(c.get("associated", []), list):
                raise KeyError("associated")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"concepts file {path}: malformed ({e}); expected "
                          '{"concepts": {name: {"name", "synonyms", "associated": [{"prompt"}]}}}') from None
    return concepts


def read_extra_prompts(path):
    """Rows (concept, prompt, seed, kind) of an extra prompt CSV, checked."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config field extra_prompts: no such file {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"concept", "prompt", "seed", "kind"} - set(reader.fieldnames or [])
        if missing:
            raise ConfigError(f"extra prompt CSV {path}: missing column(s) {sorted(missing)}; "
                              "needs concept, prompt, seed, kind")
        rows = list(reader)
    if not rows:
        raise ConfigError(f"extra prompt CSV {path}: no rows")
    for i, row in enumerate(rows, start=2):
        if row["kind"] not in PROMPT_KINDS:
            raise ConfigError(f"extra prompt CSV {path} line {i}: kind {row['kind']!r} not in {PROMPT_KINDS}")
        if not row["prompt"].strip():
            raise ConfigError(f"extra prompt CSV {path} line {i}: empty prompt")
        try:
            row["seed"] = int(row["seed"])
        except ValueError:
            raise ConfigError(f"extra prompt CSV {path} line {i}: seed {row['seed']!r} is not an integer") from None
        if row.get("images"):  # optional column: images of this prompt (I2P: 1), else generate.images_per_prompt
            if not row["images"].isdigit() or int(row["images"]) < 1:
                raise ConfigError(f"extra prompt CSV {path} line {i}: images {row['images']!r} is not a positive integer")
            row["images"] = int(row["images"])
    return rows


def dataset_prompt_files(config):
    """The prompt CSVs that data rules build from official sources (I2P, COCO-30k), when enabled."""
    return [config[name]["prompts"] for name in ("i2p", "coco") if config[name]["enabled"]]


def prompt_table(config, datasets=True):
    """Every evaluation prompt: dicts with id, concept, kind, prompt, seed (the first image's seed) and,
    for rows that set it, images.

    Built-in rows: the canonical prompt of every concept (kind erase) and its held-out associated
    prompts (kind associated); then the extra CSVs' rows; then I2P's and COCO-30k's when enabled
    (datasets=False leaves them out: their rules may not have built them yet). Image k of a prompt uses
    seed + k.
    """
    concepts = load_concepts(config["concepts_file"])
    rows = []
    for name in concepts:
        rows.append(dict(concept=name, kind="erase", prompt=config["prompt_template"].format(name),
                         seed=config["seed"]))
        for a in concepts[name].get("associated", []):
            rows.append(dict(concept=name, kind="associated", prompt=a["prompt"], seed=config["seed"]))
    extra = list(config["extra_prompts"]) + (dataset_prompt_files(config) if datasets else [])
    for path in extra:
        for r in read_extra_prompts(path):
            rows.append(dict(concept=r["concept"], kind=r["kind"], prompt=r["prompt"], seed=r["seed"]))
            if r.get("images"):
                rows[-1]["images"] = r["images"]
    for i, row in enumerate(rows):
        row["id"] = i
    return rows


def check(config):
    """Cross-field checks the schema cannot express."""
    concepts = load_concepts(config["concepts_file"])
    for name in config["erase"]:
        if name not in concepts:
            raise ConfigError(f"config field erase: unknown concept {name!r}; known: {sorted(concepts)}")
    slugs = {}
    for name in concepts:
        if slug(name) in slugs:
            raise ConfigError(f"concepts {slugs[slug(name)]!r} and {name!r} map to the same file name")
        slugs[slug(name)] = name
    for m in config["run_methods"]:
        if m not in BUILTIN_METHODS and m not in config["methods"]:
            raise ConfigError(f"config field run_methods: unknown method {m!r}; "
                              f"define it under methods or use one of {sorted(config['methods'])}")
    for name, m in config["methods"].items():
        needed = {"realera": ("mining", "regularization", "lora"), "uce": (), "esd": ("train",), "sepme": ()}[m["kind"]]
        missing = [k for k in needed if k not in m]
        if missing:
            raise ConfigError(f"config field methods.{name}: kind {m['kind']} needs {', '.join(missing)}; "
                              "add it (the methods in config.yaml show each kind)")
        for other in m.get("known", []):
            if other not in concepts:
                raise ConfigError(f"config field methods.{name}.known: unknown concept {other!r}; known: {sorted(concepts)}")
    for name, members in config["sepme_sets"].items():
        for c in members:
            if c not in concepts:
                raise ConfigError(f"config field sepme_sets.{name}: unknown concept {c!r}; known: {sorted(concepts)}")
        if config["sepme_restore"] and len(members) > 1 and config["sepme_restore"] not in members:
            raise ConfigError(f"config field sepme_restore: {config['sepme_restore']!r} is not in sepme_sets.{name}")
    cf = config["mining"]
    if cf["d2"] <= cf["d1"]:
        raise ConfigError(f"config field mining.d2: must exceed mining.d1 ({cf['d1']}), got {cf['d2']}")
    if cf["s2"] > cf["s1"]:
        raise ConfigError(f"config field mining.s2: must not exceed mining.s1 ({cf['s1']}), got {cf['s2']}")
    if config["world"] == "sd" and not config["sd"]["model"]:
        raise ConfigError("config field sd.model: required when world is sd (a diffusers model id or directory)")
    if config["world"] == "miniworld":
        weights = Path(config["miniworld"]["weights"]) / "unet.safetensors"
        if not weights.is_file():
            raise ConfigError(f"config field miniworld.weights: {weights} not found; "
                              "restore it from git or run `snakemake pretrain`")
    if config["world"] == "sd":
        from .world import check_sd_model
        try:
            check_sd_model(config["sd"]["model"])
        except ValueError as e:
            raise ConfigError(f"config field {e}") from None
        if config["scorer"]["kind"] == "gcd":
            from .scoring import check_gcd
            s = config["scorer"]
            try:
                check_gcd(s["gcd_python"], s["gcd_resources"], s["gcd_weights_file"])
            except FileNotFoundError as e:
                raise ConfigError(str(e)) from None
    for path in config["extra_prompts"]:
        for i, row in enumerate(read_extra_prompts(path), start=2):
            if row["kind"] == "coco":   # a caption of no concept: scored for CLIP score and FID only
                continue
            if row["concept"] not in concepts:
                raise ConfigError(f"extra prompt CSV {path} line {i}: unknown concept {row['concept']!r}; "
                                  f"known: {sorted(concepts)}")
            if row["kind"] == "erase" and row["concept"].lower() not in row["prompt"].lower():
                raise ConfigError(f"extra prompt CSV {path} line {i}: erase prompt {row['prompt']!r} does not "
                                  f"contain the concept word {row['concept']!r}; put it in, or use kind associated")
    if config["i2p"]["enabled"] and config["i2p"]["concept"] not in concepts:
        raise ConfigError(f"config field i2p.concept: unknown concept {config['i2p']['concept']!r}; "
                          f"known: {sorted(concepts)}")
    check_coco(config)
    prompt_table(config, datasets=all(Path(p).is_file() for p in dataset_prompt_files(config)))
    return config


def check_coco(config):
    """COCO-30k's CLIP score and FID need Stable Diffusion, and FID needs both of its folders."""
    coco = config["coco"]
    if not coco["enabled"]:
        return
    if config["world"] != "sd":
        raise ConfigError("config field coco.enabled: COCO-30k captions need world: sd (the mini world draws shapes)")
    if coco["reference_dir"] is None:
        return
    if not Path(coco["reference_dir"]).is_dir():
        raise ConfigError(f"config field coco.reference_dir: {coco['reference_dir']} is not a folder; put the real "
                          "COCO val2014 images there (or set it to null for CLIP score without FID)")
    weights = Path(coco["inception_dir"] or "") / "inception-2015-12-05.pt"
    if not coco["inception_dir"] or not weights.is_file():
        raise ConfigError(f"config field coco.inception_dir: {weights} not found; FID uses clean-fid's Inception "
                          "(README 'COCO-30k'): download inception-2015-12-05.pt into that folder")


def load_config(path_or_dict):
    config = path_or_dict if isinstance(path_or_dict, dict) else yaml.safe_load(Path(path_or_dict).read_text())
    if not isinstance(config, dict):
        raise ConfigError(f"config {path_or_dict}: expected a YAML mapping")
    return check(validate(config))
