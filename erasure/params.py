"""What each stage depends on, derived from the config in one place.

The Snakefile passes these dicts to the stages as `params:` (so changing a value reruns exactly the
stages that read it), and each stage CLI run with `--config` derives the very same dict.
"""
import hashlib

from .io import slug
from .prompts import concept_by_slug, load_concepts, preserve_prompts, prompt_bank, read_attack_prompts


def world_params(config: dict) -> dict:
    if config["world"] == "miniworld":
        return {"world": "miniworld", "miniworld": dict(config["miniworld"])}
    return {"world": "sd", "sd": dict(config["sd"])}


def derived_seed(config: dict, *parts: object) -> int:
    """A seed per (stage, concept, ...) that does not depend on list order."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()
    return config["seed"] * 1_000_003 + int(digest[:8], 16) % 1_000_000


def mine(config: dict, sampler: str, concept_slug: str) -> dict:
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "sampler": sampler,
            "erase_prompts": [config["prompt_template"].format(concept)], "anchor": config["anchor"],
            "mining": dict(config["mining"]) if sampler != "none" else {},
            "prompt_bank": prompt_bank(config) if sampler == "data" else [],
            "seed": derived_seed(config, "mine", sampler, concept)}


def closed_form(config: dict, method: str, concept_slug: str) -> dict:
    concept = concept_by_slug(config, concept_slug)
    m = config["methods"][method]
    common = {**world_params(config), "concept": concept, "kind": m["kind"],
              "preserve_prompts": preserve_prompts(config, concept), "pooled": config["closed_form"]["pooled"]}
    if m["kind"] == "uce":
        return {**common, **uce_rows(config, m, concept)}
    cf = {k: v for k, v in config["closed_form"].items() if k != "pooled"}
    if m["reg_weight"] is not None:  # the method sets its own weight (a point of a frontier sweep)
        cf["reg_weight"] = m["reg_weight"]
    return {**common, "regularization": m["regularization"], "closed_form": cf}


def uce_rows(config: dict, m: dict, concept: str) -> dict:
    """A kind-uce method's prompts and scales, resolved to what its solve uses (docs/baselines.md)."""
    u = config["uce"]
    templates = u["expand_templates"] if m["expand"] else []
    preserve = ([""] if m["retain_empty"] else []) + preserve_prompts(config, concept)
    scale = m["preserve_scale"]
    if scale is None:
        scale = u["preserve_scale"]
    elif scale == "auto":   # the 2023 code's default when --preserve_scale is not given
        scale = max(0.1, 1 / max(1, len(preserve)))
    return {"tokens": m["tokens"], "preserve_prompts": preserve,
            "erase_prompts": [config["prompt_template"].format(concept)] + [t.format(concept) for t in templates],
            "uce": {"lamb": u["lamb"], "erase_scale": u["erase_scale"], "preserve_scale": scale, "guide": u["guide"]}}


def rece(config: dict, method: str, concept_slug: str) -> dict:
    """RECE's rounds from the base UCE edit: the base's guide, the run's preserve prompts."""
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "base": config["methods"][method]["base"],
            "guide": config["uce"]["guide"], "preserve_prompts": preserve_prompts(config, concept),
            "rece": dict(config["rece"])}


def adavd(config: dict, method: str, concept_slug: str) -> dict:
    """AdaVD's targets: the erased concept's name, as the reference erases the names it is given."""
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "target_concepts": [concept],
            "adavd": {**config["adavd"], "shift": config["methods"][method]["shift"]}}


def speed(config: dict, method: str, concept_slug: str) -> dict:
    """SPEED's rows and settings: the canonical erase prompt, the run's preserve prompts as retain
    candidates, and the method's refinement switches (the paper's ablation rows)."""
    concept = concept_by_slug(config, concept_slug)
    m = config["methods"][method]
    return {**world_params(config), "concept": concept, "erase_prompts": [config["prompt_template"].format(concept)],
            "preserve_prompts": preserve_prompts(config, concept),
            "speed": {**config["speed"], "ipf": m["ipf"], "dpa": m["dpa"], "iec": m["iec"]},
            "seed": derived_seed(config, "speed", method, concept)}


def mace(config: dict, method: str, concept_slug: str) -> dict:
    """MACE's prompts and settings: its templates filled with the concept and with the run's anchor (the
    mapping concept), the run's preserve prompts, and the unedited model's images of the canonical prompt."""
    concept = concept_by_slug(config, concept_slug)
    g = config["generate"]
    return {**world_params(config), "concept": concept, "mapping": config["anchor"],
            "preserve_prompts": preserve_prompts(config, concept),
            "image_prompt": config["prompt_template"].format(concept),
            "generate": {k: g[k] for k in ("steps", "guidance", "eta", "sampler")},
            "attention_lora": config["methods"][method]["attention_lora"], "mace": dict(config["mace"]),
            "seed": derived_seed(config, "mace", method, concept)}


def sepme(config: dict, concepts: list[str]) -> dict:
    """SepME increments for a known set of concepts: everything not in the set is preserved."""
    return {**world_params(config), "concepts": list(concepts), "anchor": config["anchor"],
            "prompt_template": config["prompt_template"], "preserve_prompts": preserve_prompts(config, *concepts),
            "sepme": dict(config["sepme"])}


def sepme_method(config: dict, method: str, concept_slug: str) -> dict:
    """A single-concept SepME method: the concept's increment, solved against the method's known concepts."""
    return sepme(config, [concept_by_slug(config, concept_slug)] + config["methods"][method]["known"])


def train_esd(config: dict, method: str, concept_slug: str) -> dict:
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "train": config["methods"][method]["train"],
            "prompt": config["prompt_template"].format(concept), "esd": dict(config["esd"]),
            "seed": derived_seed(config, "esd", method, concept)}


def train_lora(config: dict, method: str, concept_slug: str) -> dict:
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "lora": dict(config["lora"]),
            "regularization": config["methods"][method]["regularization"],
            "preserve_prompts": preserve_prompts(config, concept),
            "seed": derived_seed(config, "lora", method, concept)}


def attack(config: dict, attack_name: str, method: str, concept_slug: str) -> dict:
    """An attack on one method's model for one erased concept: only its own budget section, so a changed
    inversion budget reruns the inversions and nothing else."""
    concept = concept_by_slug(config, concept_slug)
    a = config["attacks"]
    out = {**world_params(config), "attack": attack_name, "method": method, "concept": concept,
           "concept_slug": concept_slug, "templates": list(a["templates"]), "images_per_prompt": a["images_per_prompt"],
           "image_seed": config["seed"] + a["image_seed"],
           "seed": derived_seed(config, "attack", a["seed"], attack_name, method, concept)}
    names = sorted({concept, *load_concepts(config["concepts_file"])[concept].get("synonyms", [concept])})
    if attack_name in ("inversion", "unlearndiff", "revival"):   # white box: the unedited model's images
        g = config["generate"]
        out.update({attack_name: dict(a[attack_name])}, target_prompt=config["prompt_template"].format(concept),
                   generate={k: g[k] for k in ("steps", "guidance", "eta", "sampler")})
    if attack_name in ("none", "unlearndiff"):   # the prompts they start from: the file's, or the templates'
        given = (read_attack_prompts(a["prompts_file"], load_concepts(config["concepts_file"]))
                 if a["prompts_file"] else {})
        out["base_prompts"] = given.get(concept) or [t.format(concept) for t in a["templates"]]
    if attack_name == "unlearndiff":
        out["names"] = names
    if attack_name == "ringabell":
        rb = dict(a["ringabell"])
        rb["neutral"] = rb["neutral"] if rb["neutral"] is not None else config["anchor"]
        out.update(ringabell=rb, names=names)
    return out


def attacked_methods(config: dict) -> list[str]:
    return list(config["attacks"]["methods"] or config["run_methods"])


def robustness(config: dict) -> dict:
    a = config["attacks"]
    return {"attacks": list(a["run"]), "methods": attacked_methods(config),
            "concepts": [slug(c) for c in config["erase"]], "transfer": a["transfer"],
            "images_per_prompt": a["images_per_prompt"],
            "revival_steps": sorted(a["revival"]["checkpoints"]) if "revival" in a["run"] else [],
            "grid_images": config["report"]["grid_images"]}


def generate(config: dict, method: str) -> dict:
    out = {**world_params(config), "method": method, "generate": dict(config["generate"])}
    if config["generate"]["images_per_preserved"]:   # which prompts get the full image count (set_erased)
        sepme_set = method[4:] if method.startswith("set_") else None
        out["erase"] = list(config["sepme_sets"][sepme_set] if sepme_set in config["sepme_sets"] else config["erase"])
    return out


def score(config: dict) -> dict:
    out = {**world_params(config), "concepts": list(load_concepts(config["concepts_file"]))}
    if config["world"] == "sd":
        out["scorer"] = dict(config["scorer"])
    return out


def remap(config: dict, concept_slug: str) -> dict:
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "anchor": config["anchor"]}


def fid_reference(config: dict) -> dict:
    coco = config["coco"]
    return {"coco": {k: coco[k] for k in ("reference_dir", "inception_dir", "batch_size")}}


def quality(config: dict) -> dict:
    """COCO-30k CLIP score and FID (the clip_* fields of `scorer` name the CLIP model)."""
    s = config["scorer"]
    return {**fid_reference(config), "clip": {"model": s["clip_model"], "pretrained": s["clip_pretrained"]}}


def drawn_sets(config: dict) -> dict:
    """The SepME sets this run draws: sepme_sets, or those sepme_draw names (one part of the table)."""
    draw = config["sepme_draw"]
    return {name: members for name, members in config["sepme_sets"].items() if draw is None or name in draw}


def sepme_table(config: dict) -> dict:
    return {"sets": drawn_sets(config), "restore": config["sepme_restore"],
            "images_per_prompt": config["generate"]["images_per_prompt"],
            "images_per_preserved": config["generate"]["images_per_preserved"], "seed": config["seed"],
            "dtype": config[config["world"]]["dtype"]}


def pretrain(config: dict) -> dict:
    return dict(config["pretrain"])


def report(config: dict) -> dict:
    out = {"erase": config["erase"], "run_methods": config["run_methods"], "methods": config["methods"],
           "grid_images": config["report"]["grid_images"],
           "images_per_prompt": config["generate"]["images_per_prompt"],
           "images_per_preserved": config["generate"]["images_per_preserved"], "seed": config["seed"],
           "dtype": config[config["world"]]["dtype"]}
    if config["report"]["frontier"]:
        out.update(frontier=config["report"]["frontier"], frontier_split=config["report"]["frontier_split"])
    if config["world"] == "sd" and config["scorer"]["kind"] == "nudenet":
        out["nudenet_threshold"] = config["scorer"]["nudenet_threshold"]
    return out


def _without_world(stage_params: dict) -> dict:
    return {k: v for k, v in stage_params.items() if k not in ("world", "sd", "miniworld")}


def edit_settings(config: dict, method: str, concept_slug: str) -> dict:
    """The settings of every stage that made a (method, concept) edit, by stage: the model card's record."""
    if method.startswith("set_"):
        return {"sepme": _without_world(sepme(config, config["sepme_sets"][method[4:]]))}
    m = config["methods"][method]
    if m["kind"] == "esd":
        return {"train_esd": _without_world(train_esd(config, method, concept_slug))}
    if m["kind"] == "sepme":
        return {"sepme": _without_world(sepme_method(config, method, concept_slug))}
    if m["kind"] == "adavd":
        return {"adavd": _without_world(adavd(config, method, concept_slug))}
    if m["kind"] == "speed":
        return {"speed": _without_world(speed(config, method, concept_slug))}
    if m["kind"] == "mace":
        return {"mace": _without_world(mace(config, method, concept_slug))}
    if m["kind"] == "rece":
        return {"closed_form": _without_world(closed_form(config, m["base"], concept_slug)),
                "rece": _without_world(rece(config, method, concept_slug))}
    out = {"closed_form": _without_world(closed_form(config, method, concept_slug))}
    if m["kind"] == "realera" and m["mining"] != "none":
        out["mine"] = _without_world(mine(config, m["mining"], concept_slug))
    if m["kind"] == "realera" and m["lora"]:
        out["train_lora"] = _without_world(train_lora(config, method, concept_slug))
    return out


def export(config: dict, method: str, concept_slug: str) -> dict:
    """An exported model: what made its edit (for the card), the sampler settings its card tells users
    to draw with, and the export's own options. Method set_<set>, concept all|restore|joint: a SepME set."""
    if method.startswith("set_"):
        members = list(config["sepme_sets"][method[4:]])
        concepts = [c for c in members if concept_slug != "restore" or c != config["sepme_restore"]]
        kind = "sepme"
    else:
        concepts, kind = [concept_by_slug(config, concept_slug)], config["methods"][method]["kind"]
    g = config["generate"]
    return {**world_params(config), "method": method, "concept": concept_slug, "kind": kind, "concepts": concepts,
            "settings": edit_settings(config, method, concept_slug),
            "generate": {k: g[k] for k in ("steps", "guidance", "eta", "sampler")}, "export": dict(config["export"])}
