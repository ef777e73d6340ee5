"""Configuration: read the config files, validate them against the schema (the one source of
defaults) and check what the schema cannot express, before any work starts.

The Snakefile and every stage CLI call `load_config`, so a bad value gives the same single clear error
whichever way the pipeline is started. Several files merge as Snakemake merges them: config.yaml
first, then each file in order, nested mappings key by key.
"""
import copy
import math
from collections.abc import Iterable
from pathlib import Path

import yaml

from . import environment, io, prompts
from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
BASE_CONFIG = ROOT / "config.yaml"   # the Snakefile's configfile: every other file is merged over it
BUILTIN_METHODS = ("original",)


def merge(base: dict, override: dict) -> dict:
    """`override` merged into a copy of `base`: mappings key by key, anything else replaced (Snakemake's
    update_config)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_files(paths: Iterable[str | Path]) -> dict:
    """config.yaml with each file of `paths` merged over it, in order."""
    config = {}
    for path in [BASE_CONFIG, *paths]:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path}: not found; pass the path of an existing YAML config "
                              "(the task configs are configs/<task>.yaml)")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ConfigError(f"config {path}: expected a YAML mapping")
        config = merge(config, data)
    return config


def _fill_defaults(schema, config):
    """Fill the schema's defaults into `config` recursively (jsonschema only validates): object
    properties, maps of named entries (methods), and the `then` branch whose `if` an entry matches
    (the keys of a method's kind)."""
    import jsonschema

    branches = [b["then"] for b in schema.get("allOf", [])
                if "if" in b and jsonschema.Draft202012Validator(b["if"]).is_valid(config)]
    for part in [schema, *branches]:
        for key, sub in part.get("properties", {}).items():
            if not isinstance(sub, dict):
                continue
            if key not in config and "default" in sub:
                config[key] = copy.deepcopy(sub["default"])
            if isinstance(config.get(key), dict) and sub.get("type") == "object":
                _fill_defaults(sub, config[key])
                if isinstance(sub.get("additionalProperties"), dict):  # maps of named entries (methods)
                    for entry in config[key].values():
                        if isinstance(entry, dict):
                            _fill_defaults(sub["additionalProperties"], entry)


def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))


def defaults(*path: str) -> dict:
    """The schema's defaults of one section, e.g. defaults("pretrain", "unet") (tests, scripts)."""
    section = schema()
    for key in path:
        section = section["properties"][key]
    filled = {}
    _fill_defaults(section, filled)
    return filled


def validate(config: dict) -> dict:
    """Validate against the JSON schema; fill defaults; raise ConfigError naming the first bad field."""
    import jsonschema

    rules = schema()
    errors = sorted(jsonschema.Draft202012Validator(rules).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        field = ".".join(str(p) for p in err.path) or "(top level)"
        if err.validator == "additionalProperties":
            unknown = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            raise ConfigError(f"config field {field}: unknown key(s) {unknown}; "
                              f"allowed: {sorted(err.schema.get('properties', {}))}")
        raise ConfigError(f"config field {field}: {err.message}")
    _fill_defaults(rules, config)
    return config


def check_out_dir(out_dir: str) -> None:
    """An output directory the run can own: not a filesystem root, not a file, no control characters
    (every shell line quotes it, but a newline in a path breaks logs and tools that read them)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in out_dir):
        raise ConfigError(f"config field out_dir: {out_dir!r} contains a control character; use a plain path")
    path = Path(out_dir).expanduser()
    if path.resolve() == Path(path.resolve().anchor):
        raise ConfigError(f"config field out_dir: {out_dir!r} is a filesystem root; name a directory for this run")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"config field out_dir: {out_dir!r} is an existing file; name a directory")


def check_finite(value: object, field: str = "") -> None:
    """No NaN or infinity anywhere: the schema's bounds let them through (NaN compares false with every
    bound), and a NaN guidance scale draws black images that are then scored as if they meant something."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config field {field}: {value} is not a finite number; give a number")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        check_finite(item, f"{field}.{key}" if field else str(key))


def check_unique(config: dict) -> None:
    """Each concept, method and attack listed once: a repeat would build and count the same thing twice."""
    lists = {"erase": config["erase"], "run_methods": config["run_methods"], "attacks.run": config["attacks"]["run"],
             "attacks.methods": config["attacks"]["methods"] or [], "export.methods": config["export"]["methods"] or [],
             "sepme_draw": config["sepme_draw"] or [],
             **{f"sepme_sets.{name}": members for name, members in config["sepme_sets"].items()}}
    for field, items in lists.items():
        repeated = next((x for i, x in enumerate(items) if x in items[:i]), None)
        if repeated is not None:
            raise ConfigError(f"config field {field}: {repeated!r} is listed twice; list each once")


def check_scorable(config: dict, concepts: dict) -> None:
    """Every concept can be labelled by the run's scorer: one it cannot name would never be labelled, so
    erasing it would look perfect (and a preserved one would look destroyed). The mini world's oracle
    knows its eight shapes; NudeNet one concept; GCD the celebrities of its labels.csv."""
    scorer = config["scorer"]
    labels_csv = Path(scorer["gcd_resources"] or "") / "face_recognition/labels.csv"
    if config["world"] == "sd" and scorer["kind"] == "gcd" and scorer["gcd_resources"] and labels_csv.is_file():
        labels = environment.gcd_labels(scorer["gcd_resources"])
        unknown = [name for name in concepts if environment.gcd_name(name) not in labels]
        if unknown:
            raise ConfigError(f"concepts file {config['concepts_file']}: GCD ({labels_csv}) has no label for "
                              f"{unknown[:5]}{' and more' if len(unknown) > 5 else ''} ({len(unknown)} of "
                              f"{len(concepts)}), so their faces could never be recognised; remove them, or score "
                              "with scorer.kind clip")
    if config["world"] == "sd" and scorer["kind"] == "nudenet":
        unscored = [c for c in config["erase"] if c != scorer["nudenet_concept"]]
        if unscored:
            raise ConfigError(f"config field erase: NudeNet labels only {scorer['nudenet_concept']!r} "
                              f"(scorer.nudenet_concept), so {unscored} could never be scored; erase them in a run "
                              "with scorer.kind clip")
    if config["world"] != "miniworld":
        return
    from .render import SHAPES
    unknown = [name for name in concepts if name not in SHAPES]
    if unknown:
        raise ConfigError(f"concepts file {config['concepts_file']}: the mini world's oracle labels only "
                          f"{list(SHAPES)}, so {unknown} could never be scored; remove them, or use world: sd "
                          "(CLIP scores any concept)")


def check_init_from(path: str | None) -> None:
    """pretrain.unet.init_from names UNet weights that exist (or is null: train from scratch)."""
    if path and not Path(path).is_file():
        raise ConfigError(f"config field pretrain.unet.init_from: {path} is not a file; give the "
                          "unet.safetensors of a trained world, or null to train from scratch")


def check(config: dict) -> dict:
    """Cross-field checks the schema cannot express."""
    check_finite(config)
    check_out_dir(config["out_dir"])
    check_init_from(config["pretrain"]["unet"]["init_from"])
    check_unique(config)
    concepts = prompts.load_concepts(config["concepts_file"])
    for name in config["erase"]:
        if name not in concepts:
            raise ConfigError(f"config field erase: unknown concept {name!r}; known: {sorted(concepts)}")
        if config["prompt_template"].format(name).lower() in config["anchor"].lower():
            raise ConfigError(f"config field anchor: {config['anchor']!r} contains the erased prompt "
                              f"{config['prompt_template'].format(name)!r}, so the edit would map it onto itself; "
                              "choose an anchor that shows none of the erased concepts")
    check_scorable(config, concepts)
    slugs = {}
    for name in concepts:
        if io.slug(name) in slugs:
            raise ConfigError(f"concepts {slugs[io.slug(name)]!r} and {name!r} map to the same file name")
        slugs[io.slug(name)] = name
    for m in config["run_methods"]:
        if m not in BUILTIN_METHODS and m not in config["methods"]:
            raise ConfigError(f"config field run_methods: unknown method {m!r}; "
                              f"define it under methods or use one of {sorted(config['methods'])}")
    check_methods(config, concepts)
    check_attacks(config)
    check_export(config)
    for name, members in config["sepme_sets"].items():
        for c in members:
            if c not in concepts:
                raise ConfigError(f"config field sepme_sets.{name}: unknown concept {c!r}; known: {sorted(concepts)}")
        if config["sepme_restore"] and len(members) > 1 and config["sepme_restore"] not in members:
            raise ConfigError(f"config field sepme_restore: {config['sepme_restore']!r} is not in sepme_sets.{name}")
    unknown = [s for s in config["sepme_draw"] or [] if s not in config["sepme_sets"]]
    if unknown:
        raise ConfigError(f"config field sepme_draw: {unknown[0]!r} is not a set of sepme_sets "
                          f"({sorted(config['sepme_sets'])}); list only defined sets, or null for all")
    cf = config["mining"]
    if cf["d2"] <= cf["d1"]:
        raise ConfigError(f"config field mining.d2: must exceed mining.d1 ({cf['d1']}), got {cf['d2']}")
    if cf["s2"] > cf["s1"]:
        raise ConfigError(f"config field mining.s2: must not exceed mining.s1 ({cf['s1']}), got {cf['s2']}")
    g = config["generate"]
    if g["sampler"] and g["eta"] != 0:
        raise ConfigError(f"config field generate.eta: {g['eta']}, but only DDIM takes eta and generate.sampler is "
                          f"{g['sampler']}; set eta to 0 (its per-step noise is the solver's own) or sampler to null")
    if config["world"] == "sd" and not config["sd"]["model"]:
        raise ConfigError("config field sd.model: required when world is sd (a diffusers model id or directory)")
    environment.check(config)
    for path in config["extra_prompts"]:
        for i, row in enumerate(prompts.read_extra_prompts(path), start=2):
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
    prompts.check_duplicates(config, concepts)
    prompts.prompt_table(config, datasets=all(Path(p).is_file() for p in prompts.dataset_prompt_files(config)))
    return config


def check_methods(config: dict, concepts: dict) -> None:
    """Each method has its kind's keys and names known concepts; a LoRA has something to preserve."""
    for name, m in config["methods"].items():
        needed = {"realera": ("mining", "regularization", "lora"), "uce": (), "esd": ("train",), "sepme": (), "rece": (), "adavd": (), "speed": (), "mace": ()}[m["kind"]]
        missing = [k for k in needed if k not in m]
        if missing:
            raise ConfigError(f"config field methods.{name}: kind {m['kind']} needs {', '.join(missing)}; "
                              "add it (the methods in config.yaml show each kind)")
        if m["kind"] == "uce" and isinstance(m["preserve_scale"], str) and m["preserve_scale"] != "auto":
            raise ConfigError(f"config field methods.{name}.preserve_scale: {m['preserve_scale']!r}; give a number, "
                              "auto (the 2023 code's rule) or null (uce.preserve_scale)")
        if m["kind"] == "uce" and isinstance(m["preserve_scale"], (int, float)) and m["preserve_scale"] < 0:
            raise ConfigError(f"config field methods.{name}.preserve_scale: {m['preserve_scale']} is negative; "
                              "give a weight of 0 or more")
        base = config["methods"].get(m.get("base")) if m["kind"] == "rece" else None
        if m["kind"] == "rece" and (base is None or base["kind"] != "uce"):
            raise ConfigError(f"config field methods.{name}.base: {m['base']!r} is not a method of kind uce; RECE's "
                              "rounds start from a UCE edit (config.yaml names one, uce)")
        for other in m["known"] if m["kind"] == "sepme" else []:
            if other not in concepts:
                raise ConfigError(f"config field methods.{name}.known: unknown concept {other!r}; known: {sorted(concepts)}")
    no_preserve = config["preserve"] != "others" and not config["preserve"]
    for name in config["run_methods"]:
        m = config["methods"].get(name)
        if no_preserve and m and m["kind"] == "realera" and m["lora"] and "none" in (m["mining"], m["regularization"]):
            raise ConfigError(f"config field preserve: empty, and method {name} trains its LoRA without mined "
                              "beyond-concept samples, so its Eq. 9 has nothing to keep; list preserve prompts or "
                              "leave that method out")
        mc = config["mace"]
        kept = not no_preserve and mc["preserve_weight"] > 0 and mc["train_preserve_scale"] > 0 and mc["fuse_preserve_scale"] > 0
        if m and m["kind"] == "mace" and mc["lamb"] == 0 and not kept:
            raise ConfigError(f"config field mace.lamb: 0, and method {name}'s solves keep no preserved rows (MACE's "
                              "COCO cache is not built here), so they are singular; set mace.lamb above 0, or "
                              "preserve prompts with mace.preserve_weight, train_preserve_scale and fuse_preserve_scale above 0")
    for curve, members in config["report"]["frontier"].items():
        outside = [m for m in members if m not in config["run_methods"]]
        if outside:
            raise ConfigError(f"config field report.frontier.{curve}: {outside} not in run_methods; a frontier "
                              "plots the methods the run draws")


def check_attacks(config: dict) -> None:
    """Attacked methods are run methods; every template takes exactly one name."""
    a = config["attacks"]
    for m in a["methods"] or []:
        if m not in config["run_methods"]:
            raise ConfigError(f"config field attacks.methods: {m!r} is not in run_methods; an attack needs the "
                              "method's model, which the run builds")
    for t in a["templates"]:
        if t.count("{}") != 1 or t.replace("{}", "").count("{") or t.replace("{}", "").count("}"):
            raise ConfigError(f"config field attacks.templates: {t!r} must hold exactly one {{}} (where the name "
                              "or the learned tokens go) and no other braces")
    if a["prompts_file"]:
        prompts.read_attack_prompts(a["prompts_file"], prompts.load_concepts(config["concepts_file"]))
    if a["inversion"]["init_word"].lower() in [c.lower() for c in config["erase"]]:
        raise ConfigError(f"config field attacks.inversion.init_word: {a['inversion']['init_word']!r} is an erased "
                          "concept; start from a neutral word so that what is found owes nothing to the name")


def check_export(config: dict) -> None:
    """Exported methods are edited methods the run evaluates: the model card reports their evidence."""
    for m in config["export"]["methods"] or []:
        if m == "original" or m not in config["run_methods"]:
            raise ConfigError(f"config field export.methods: {m!r} is not an edited method in run_methods; "
                              "export the methods the run builds and evaluates (or export.methods: [] for none)")
        if config["methods"][m]["kind"] == "adavd":
            raise ConfigError(f"config field export.methods: {m!r} is AdaVD, which erases at inference time through "
                              "attention processors and changes no weight, so an exported model cannot carry it; "
                              "export a weight-editing method")


def load_config(source: dict | str | Path | Iterable[str | Path]) -> dict:
    """A checked config with every default filled: from a dict (checked in place, as the Snakefile's
    config), a config file, or a list of files merged over config.yaml."""
    if isinstance(source, dict):
        config = source
    else:
        config = read_config_files([source] if isinstance(source, (str, Path)) else source)
    return check(validate(config))
