"""Checks of what a config points at outside itself: model directories, weight files, other
environments, datasets. Plain file checks with no heavy imports, so validating a config stays fast and
the stages that load a model import only what they use."""
import json
from pathlib import Path

from .errors import ConfigError


def check(config: dict) -> None:
    """Every outside file the config needs exists, before any work starts."""
    if config["world"] == "miniworld":
        weights = Path(config["miniworld"]["weights"]) / "unet.safetensors"
        if not weights.is_file():
            raise ConfigError(f"config field miniworld.weights: {weights} not found; "
                              "restore it from git or run `snakemake pretrain`")
    if config["world"] == "sd":
        try:
            check_sd_model(config["sd"]["model"])
        except ValueError as e:
            raise ConfigError(f"config field {e}") from None
        if config["scorer"]["kind"] == "gcd":
            s = config["scorer"]
            try:
                check_gcd(s["gcd_python"], s["gcd_resources"], s["gcd_weights_file"])
            except FileNotFoundError as e:
                raise ConfigError(str(e)) from None
    if config["world"] == "sd" and model_family(config["sd"]["model"]) == "flux":
        check_flux(config)
    if config["closed_form"]["pooled"] and (config["world"] != "sd" or model_family(config["sd"]["model"]) != "sdxl"):
        raise ConfigError("config field closed_form.pooled: only SDXL models have a pooled text embedding "
                          "in the UNet's conditioning; set it to false for this model")
    check_coco(config)


FLUX_KINDS = ("realera", "uce", "rece", "sepme")   # the method kinds tested on Flux (tests/test_flux.py)


def check_flux(config: dict) -> None:
    """What runs on Flux today (erasure/flux.py): the unedited model, RealEra's kinds (closed form, LoRA),
    UCE, RECE and SepME, generation with Flux's own sampler, scoring, the attacks, the report and the
    export. ESD, SPEED, MACE and AdaVD are written for a UNet's cross-attention and are not built for
    Flux's transformer yet; each gets one line here, before any work."""
    for name in config["run_methods"]:
        kind = (config["methods"].get(name) or {}).get("kind")
        if name != "original" and kind not in FLUX_KINDS:
            raise ConfigError(f"config field run_methods: {name!r} (kind {kind}) does not run on Flux yet (sd.model "
                              f"is a Flux model); Flux runs original and the kinds {', '.join(FLUX_KINDS)}")
    if config["generate"]["eta"] != 0:
        raise ConfigError(f"config field generate.eta: {config['generate']['eta']}; Flux samples with its "
                          "deterministic flow-matching scheduler, set eta to 0")
    if config["generate"]["sampler"]:
        raise ConfigError(f"config field generate.sampler: {config['generate']['sampler']}; the solvers are built on a "
                          "UNet's DDIM schedule, Flux samples with its flow-matching scheduler: set it to null")
    if config["export"]["lora_rank"]:
        raise ConfigError("config field export.lora_rank: the LoRA export is written for UNets; set it to 0 for Flux")


def check_sd_model(model: str) -> None:
    """A local SD directory must exist and be a diffusers layout; a hub id ("org/name") must be in the
    local cache, since runs never download (HF_HUB_OFFLINE, set by the package)."""
    path = Path(model).expanduser()
    looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1
    if looks_local and not path.exists():
        raise ValueError(f"sd.model {model!r}: no such directory; give a local diffusers directory or a model id")
    if path.exists() and not (path / "model_index.json").is_file():
        raise ValueError(f"sd.model {model!r} is not a diffusers model directory (no model_index.json); "
                         "point it at a directory saved with save_pretrained or at a model id")
    if not path.exists() and not hub_cached(model):
        raise ValueError(f"sd.model {model!r}: not in the Hugging Face cache and runs are offline (nothing is "
                         "downloaded at run time); download it once (hf download "
                         f"{model}) or give a local diffusers directory")
    model_family(model)


# The pipeline class a diffusers directory names in model_index.json -> the family of World that loads it.
FAMILIES = {"StableDiffusionPipeline": "sd", "StableDiffusionXLPipeline": "sdxl", "FluxPipeline": "flux"}


def model_family(model: str) -> str:
    """"sd" (v1.x/v2.x), "sdxl" or "flux", read from the model's model_index.json (`_class_name`), so pointing
    sd.model at any supported directory or cached id needs no other setting."""
    path = Path(model).expanduser()
    index = path / "model_index.json" if path.exists() else Path(_cached_index(model))
    name = json.loads(index.read_text()).get("_class_name", "")
    if name not in FAMILIES:
        kind = f"is a {name} pipeline" if name else "names no pipeline class"
        raise ValueError(f"sd.model {model!r} {kind} (model_index.json _class_name); supported: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _cached_index(model_id: str):
    from huggingface_hub import try_to_load_from_cache
    return try_to_load_from_cache(model_id, "model_index.json")


def hub_cached(model_id: str) -> bool:
    """Whether a hub model id's model_index.json is in the local Hugging Face cache."""
    return isinstance(_cached_index(model_id), str)


def check_gcd(python: str, resources: str, weights_file: str) -> None:
    """One message naming the field to fix, before any image is read."""
    where = "create it as docs/sd.md 'Celebrity detector (GCD)' says and set"
    if not python or not Path(python).is_file():
        raise FileNotFoundError(f"config field scorer.gcd_python: {python!r} is not a Python executable; "
                                f"the GIPHY Celebrity Detector needs its own environment: {where} scorer.gcd_python")
    res = Path(resources or "")
    for need in ("face_recognition/labels.csv", weights_file):
        if not resources or not (res / need).is_file():
            raise FileNotFoundError(f"config field scorer.gcd_resources: {res / need} not found; download GCD's "
                                    f"resources (examples/download_model.py in its repository) and {where} "
                                    "scorer.gcd_resources")


def gcd_name(label: str) -> str:
    """GCD labels are folder names ("Leonardo_DiCaprio"); compare them with concept names this way."""
    return " ".join(label.replace("_", " ").replace("-", " ").split()).lower()


def gcd_labels(resources: str) -> set[str]:
    """Every name GCD can give a face (face_recognition/labels.csv), as gcd_name writes it. Every cell is
    read, so the check does not rely on the file's column order."""
    import csv
    with open(Path(resources) / "face_recognition/labels.csv", newline="", encoding="utf-8", errors="replace") as f:
        return {gcd_name(cell) for row in csv.reader(f) for cell in row if cell.strip()}


def check_coco(config: dict) -> None:
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
                          "(docs/sd.md 'COCO-30k'): download inception-2015-12-05.pt into that folder")
