"""What each stage depends on, derived from the config in one place.

The Snakefile passes these dicts to the stages as `params:` (so changing a value reruns exactly the
stages that read it), and each stage CLI run with `--config` derives the very same dict.
"""
import hashlib

from .config import load_concepts, prompt_table, slug  # noqa: F401 (prompt_table: used by the Snakefile)


def concept_by_slug(config, concept_slug):
    for name in load_concepts(config["concepts_file"]):
        if slug(name) == concept_slug:
            return name
    raise KeyError(f"no concept with file name {concept_slug!r} in {config['concepts_file']}")


def world_params(config):
    if config["world"] == "miniworld":
        return {"world": "miniworld", "miniworld": dict(config["miniworld"])}
    return {"world": "sd", "sd": dict(config["sd"])}


def derived_seed(config, *parts):
    """A seed per (stage, concept, ...) that does not depend on list order."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()
    return config["seed"] * 1_000_003 + int(digest[:8], 16) % 1_000_000


def prompt_bank(config):
    """Prompts whose token embeddings span "how prompts vary" for the data sampler and the audit.
    Built from every concept's training names; never from the held-out associated prompts."""
    concepts = load_concepts(config["concepts_file"])
    return [config["prompt_template"].format(s) for c in concepts.values() for s in c.get("synonyms", [c["name"]])]


def preserve_prompts(config, *erased):
    """The preserve prompts: "others" = canonical prompts of every concept not in `erased`."""
    if config["preserve"] == "others":
        names = [n for n in load_concepts(config["concepts_file"]) if n not in erased]
        return [config["prompt_template"].format(n) for n in names]
    return list(config["preserve"])


def mine(config, sampler, concept_slug):
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "sampler": sampler,
            "erase_prompts": [config["prompt_template"].format(concept)], "anchor": config["anchor"],
            "mining": dict(config["mining"]) if sampler != "none" else {},
            "prompt_bank": prompt_bank(config) if sampler == "data" else [],
            "seed": derived_seed(config, "mine", sampler, concept)}


def closed_form(config, method, concept_slug):
    concept = concept_by_slug(config, concept_slug)
    m = config["methods"][method]
    common = {**world_params(config), "concept": concept, "kind": m["kind"],
              "preserve_prompts": preserve_prompts(config, concept)}
    if m["kind"] == "uce":
        u = config["uce"]
        prompts = [config["prompt_template"].format(concept)] + [t.format(concept) for t in u["expand_templates"]]
        return {**common, "tokens": m.get("tokens", "last"), "erase_prompts": prompts,
                "uce": {k: u[k] for k in ("lamb", "erase_scale", "preserve_scale", "guide")}}
    return {**common, "regularization": m["regularization"], "closed_form": dict(config["closed_form"])}


def sepme(config, concepts):
    """SepME increments for a known set of concepts: everything not in the set is preserved."""
    return {**world_params(config), "concepts": list(concepts), "anchor": config["anchor"],
            "prompt_template": config["prompt_template"], "preserve_prompts": preserve_prompts(config, *concepts),
            "sepme": dict(config["sepme"])}


def train_esd(config, method, concept_slug):
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "train": config["methods"][method]["train"],
            "prompt": config["prompt_template"].format(concept), "esd": dict(config["esd"]),
            "seed": derived_seed(config, "esd", method, concept)}


def train_lora(config, method, concept_slug):
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "lora": dict(config["lora"]),
            "regularization": config["methods"][method]["regularization"],
            "preserve_prompts": preserve_prompts(config, concept),
            "seed": derived_seed(config, "lora", method, concept)}


def generate(config, method):
    out = {**world_params(config), "method": method, "generate": dict(config["generate"])}
    if config["generate"]["images_per_preserved"]:
        out["erase"] = list(config["erase"])   # which prompts get the full image count
    return out


def score(config):
    out = {**world_params(config), "concepts": list(load_concepts(config["concepts_file"]))}
    if config["world"] == "sd":
        out["scorer"] = dict(config["scorer"])
    return out


def remap(config, concept_slug):
    concept = concept_by_slug(config, concept_slug)
    return {**world_params(config), "concept": concept, "anchor": config["anchor"]}


def fid_reference(config):
    coco = config["coco"]
    return {"coco": {k: coco[k] for k in ("reference_dir", "inception_dir", "batch_size")}}


def quality(config):
    """COCO-30k CLIP score and FID (the clip_* fields of `scorer` name the CLIP model)."""
    s = config["scorer"]
    return {**fid_reference(config), "clip": {"model": s["clip_model"], "pretrained": s["clip_pretrained"]}}


def report(config):
    out = {"erase": config["erase"], "run_methods": config["run_methods"], "methods": config["methods"],
           "grid_images": config["report"]["grid_images"],
           "images_per_prompt": config["generate"]["images_per_prompt"]}
    if config["world"] == "sd" and config["scorer"]["kind"] == "nudenet":
        out["nudenet_threshold"] = config["scorer"]["nudenet_threshold"]
    return out
