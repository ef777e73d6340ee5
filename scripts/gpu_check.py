"""GPU check (issue 22): the pipeline's stages on a full-size random-weight SD v1.x (or SDXL base, with
--family sdxl; FLUX.1-dev's widths with 2 joint and 4 single blocks, with --family flux) in half
precision, each stage's wall time and peak GPU memory, and generation against diffusers' own pipeline.

    python scripts/gpu_check.py --out results/bench/gpu.json        # on a GPU machine, a few minutes
    python scripts/gpu_check.py --family sdxl --out results/bench/gpu_sdxl.json
    python scripts/gpu_check.py --family flux --dtype bfloat16 --out results/bench/gpu_flux.json
    python scripts/gpu_check.py --tiny --out /tmp/gpu.json           # the same path with the tiny SD (CPU test)
    python scripts/gpu_check.py --tiny --device-standin --out F      # on a CPU: also fail on any op a GPU
                                                                     # would refuse (tests/device_standin.py)

Each stage runs as its CLI, one after another, with the parameters the DAG would give it (`--config`
with the objects task plus a site file: the random model, `sd.dtype`, small budgets): mine; the closed
forms of cf, realera and uce; realera's LoRA; ESD-x; RECE; SPEED; MACE; AdaVD; SepME; generate and score
for the unedited model and realera; generate with AdaVD; concept inversion on realera and its replay;
UnlearnDiffAtk on realera; Ring-A-Bell's search; revival on uce (Flux: the stages it runs, so not ESD,
SPEED, MACE or AdaVD; docs/sd.md, "Flux"). The stages run in this process
(erasure.inprocess.run_script, with the command line a job would have), so the device minutes go to the
stages rather than to twenty-three interpreter starts
(about 8 s each: torch, diffusers, transformers): a stage's wall time leaves out that start-up, and its
peak GPU memory is torch's allocator's (reset before each stage), without CUDA's context. Each stage's
output goes to its log file. The model is built by tests/tiny_sd.py (no download); CLIP scores with
random weights (no download either).
"""
import argparse
import gc
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CONCEPT = "cat"


FLUX_SKIPS = ("train_esd esd_x", "speed", "mace", "adavd", "generate adavd")   # not built for Flux


def site_config(work: Path, model: Path, dtype: str, tiny: bool, device: str = "auto", family: str = "sd") -> dict:
    """Over configs/sd_objects.yaml: one erased class, few images and steps, short trainings."""
    site = _site_config(work, model, dtype, tiny, device)
    if family == "flux":   # its methods, its deterministic sampler and embedded guidance, a smaller image
        site["run_methods"] = ["original", "cf", "realera", "uce", "rece", "sepme"]
        site["generate"].update(eta=0.0, guidance=3.5)
        site["sd"]["resolution"] = 64 if tiny else 512
    return site


def _site_config(work: Path, model: Path, dtype: str, tiny: bool, device: str) -> dict:
    return {"out_dir": str(work / "out"), "sd": {"model": str(model), "dtype": dtype, "device": device},
            "erase": [CONCEPT],
            "scorer": {"kind": "clip", "clip_pretrained": None},
            "generate": {"images_per_prompt": 2 if tiny else 8, "steps": 2 if tiny else 20, "batch_size": 16,
                         "guidance": 7.5},
            "lora": {"steps": 4 if tiny else 100, "anchor_images": 2 if tiny else 8, "anchor_steps": 2 if tiny else 20},
            "esd": {"iterations": 2 if tiny else 100, "batch_size": 1, "ddim_steps": 2 if tiny else 20},
            "attacks": {"templates": ["a photo of the {}"], "images_per_prompt": 2 if tiny else 8,
                        "inversion": {"steps": 4 if tiny else 200, "batch_size": 1 if tiny else 4,
                                      "target_images": 2 if tiny else 8},
                        "unlearndiff": {"steps": 2 if tiny else 40, "batch_size": 1 if tiny else 4,
                                        "target_images": 2 if tiny else 8},
                        "ringabell": {"population": 4 if tiny else 200, "generations": 2 if tiny else 100,
                                      "prompts": 1},
                        "revival": {"shots": 2 if tiny else 8, "checkpoints": [2] if tiny else [100],
                                    "batch_size": 1 if tiny else 2}},
            "mace": {"steps": 2 if tiny else 50, "images": 1 if tiny else 8},
            "run_methods": ["original", "cf", "realera", "uce", "esd_x", "rece", "speed", "mace", "adavd", "sepme"],
            # the tiny SD's tokenizer keeps 16 tokens: "a photo of the airplane" would lose its class word
            **({"prompt_template": "a {}"} if tiny else {})}


def stages(work: Path, family: str = "sd") -> list[tuple[str, list[str]]]:
    """(label, stage command line after `stages/`) in DAG order; every path under work/out."""
    every = _stages(work)
    return [s for s in every if s[0] not in FLUX_SKIPS] if family == "flux" else every


def _stages(work: Path) -> list[tuple[str, list[str]]]:
    o = work / "out"
    c = ["--concept", CONCEPT]
    mined, cf, realera, uce = (str(o / p) for p in ("mine.safetensors", "cf.safetensors", "realera.safetensors",
                                                    "uce.safetensors"))
    lora = o / "lora" / "pytorch_lora_weights.safetensors"
    return [
        ("mine", ["mine.py", *c, "--sampler", "paper", "--out", mined]),
        ("closed_form cf", ["closed_form.py", "--method", "cf", *c, "--out", cf,
                            "--embeddings", str(o / "mine_none.safetensors")]),
        ("closed_form realera", ["closed_form.py", "--method", "realera", *c, "--embeddings", mined, "--out", realera]),
        ("closed_form uce", ["closed_form.py", "--method", "uce", *c, "--out", uce]),
        ("train_lora realera", ["train_lora.py", "--method", "realera", *c, "--deltas", realera,
                                "--embeddings", mined, "--out", str(lora)]),
        ("train_esd esd_x", ["train_esd.py", "--method", "esd_x", *c, "--out", str(o / "esd_x.safetensors")]),
        ("rece", ["rece.py", "--method", "rece", *c, "--base", uce, "--out", str(o / "rece.safetensors")]),
        ("speed", ["speed.py", "--method", "speed", *c, "--out", str(o / "speed.safetensors")]),
        ("mace", ["mace.py", "--method", "mace", *c, "--out", str(o / "mace.safetensors")]),
        ("adavd", ["adavd.py", "--method", "adavd", *c, "--out", str(o / "adavd.safetensors")]),
        ("sepme", ["sepme.py", "--concepts", CONCEPT, "--increments-dir", str(o / "sepme"), "--erase", CONCEPT,
                   "--out", str(o / "sepme.safetensors")]),
        ("generate original", ["generate.py", "--method", "original", "--concept", "all",
                               "--out", str(o / "images/original.csv")]),
        ("score original", ["score.py", "--manifest", str(o / "images/original.csv"),
                            "--out", str(o / "scores/original.csv")]),
        ("generate realera", ["generate.py", "--method", "realera", *c, "--deltas", realera,
                              "--lora", str(lora.parent), "--out", str(o / "images/realera.csv")]),
        ("score realera", ["score.py", "--manifest", str(o / "images/realera.csv"),
                           "--out", str(o / "scores/realera.csv")]),
        ("generate adavd", ["generate.py", "--method", "adavd", *c, "--deltas", str(o / "adavd.safetensors"),
                            "--out", str(o / "images/adavd.csv")]),
        ("attack inversion realera", ["attack.py", "--attack", "inversion", "--method", "realera", *c,
                                      "--deltas", realera, "--lora", str(lora.parent), "--out-dir", str(o / "inv")]),
        ("replay inversion realera", ["generate.py", "--method", "realera", *c, "--deltas", realera,
                                      "--lora", str(lora.parent), "--prompts", str(o / "inv/prompts.csv"),
                                      "--tokens", str(o / "inv/tokens.safetensors"),
                                      "--out", str(o / "images/inversion.csv")]),
        ("attack unlearndiff realera", ["attack.py", "--attack", "unlearndiff", "--method", "realera", *c,
                                        "--deltas", realera, "--lora", str(lora.parent), "--out-dir", str(o / "uda")]),
        # Ring-A-Bell reads the text encoder alone: its prompts are found once, on the unedited model
        ("attack ringabell", ["attack.py", "--attack", "ringabell", "--method", "original", *c,
                              "--out-dir", str(o / "rab")]),
        ("revival uce", ["revival.py", "--method", "uce", *c, "--deltas", uce, "--out-dir", str(o / "revival")]),
    ]


def run_stage(label, argv, configs, log_dir, standin=False):
    """Run stages/<argv[0]> in this process with the command line a job would give it; its wall time,
    peak GPU memory (allocated and reserved by torch, MiB) and last images/s; with standin, under the
    device stand-in (tests/device_standin.py), and the ops it found mixing devices."""
    import contextlib

    import torch
    from device_standin import DeviceStandIn   # its stand-in accelerator is sd.device cpu:0
    from erasure.inprocess import run_script
    script = ROOT / "stages" / argv[0]
    log = log_dir / f"{label.replace(' ', '_')}.log"
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    mode = DeviceStandIn() if standin else contextlib.nullcontext()
    with open(log, "w") as f, mode:
        code = run_script([script, *sum((["--config", c] for c in configs), []), *argv[1:]], f, f)
        if cuda:
            torch.cuda.synchronize()
    seconds = time.time() - t0
    if code:
        raise SystemExit(f"gpu_check: stage {label} failed (exit {code}); see {log}")
    peak = {"peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
            "peak_gpu_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20) if cuda else None}
    gc.collect()   # the stage's model goes before the next stage loads its own
    if cuda:
        torch.cuda.empty_cache()
    rates = re.findall(r"([0-9.]+) images/s", log.read_text())   # erasure.progress: "generate: 8/8 images (100%), 2.31 images/s, ..."
    return {"stage": label, "seconds": round(seconds, 2), **peak, "img_per_s": float(rates[-1]) if rates else None,
            **({"device_violations": mode.violations} if standin else {})}


def diffusers_rate(model: Path, dtype: str, g: dict, images: int, size: int | None = None) -> float:
    """Images per second of diffusers' own pipeline (the class model_index.json names) on the same model
    and settings g (steps, guidance, batch size; SD: the DDIM the stages sample with; Flux: its own
    scheduler, at `size` pixels and the T5 length the stages keep)."""
    import torch
    from diffusers import DDIMScheduler, DiffusionPipeline
    from erasure.text import flux_length
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = DiffusionPipeline.from_pretrained(model, dtype=getattr(torch, dtype))
    if hasattr(pipe, "transformer"):
        extra = {"height": size, "width": size, "max_sequence_length": flux_length(pipe.tokenizer_2)}
    else:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        extra = {}
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe("a photo of the cat", num_inference_steps=g["steps"], num_images_per_prompt=1, **extra)   # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.time()
    batch = g["batch_size"]
    for k in range(0, images, batch):
        pipe("a photo of the cat", num_inference_steps=g["steps"], num_images_per_prompt=min(batch, images - k),
             guidance_scale=g["guidance"], **extra)
    if device == "cuda":
        torch.cuda.synchronize()
    return images / (time.time() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="JSON file for the figures")
    p.add_argument("--tiny", action="store_true", help="the tiny SD instead of the full-size architecture (CPU test)")
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--model", help="an existing SD v1.x or SDXL directory instead of a random-weight build")
    p.add_argument("--family", default="sd", choices=["sd", "sdxl", "flux"],
                   help="the random-weight build: SD v1.x (default), SDXL base or FLUX.1-dev (its widths, 6 blocks)")
    p.add_argument("--device-standin", action="store_true",
                   help="on a CPU: run every stage under tests/device_standin.py and fail on any op that would mix "
                        "the accelerator's tensors with the host's")
    args = p.parse_args()

    import torch
    from erasure.environment import model_family
    from tiny_sd import build_tiny_flux, build_tiny_sd, build_tiny_sdxl
    build = {"sd": build_tiny_sd, "sdxl": build_tiny_sdxl, "flux": build_tiny_flux}[args.family]
    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = Path(args.model) if args.model else build(work / "model", full_size=not args.tiny)
        family = model_family(str(model))
        site = site_config(work, model, args.dtype, args.tiny, "cpu:0" if args.device_standin else "auto", family)
        (work / "site.yaml").write_text(yaml.safe_dump(site))
        (work / "out").mkdir()
        configs = [ROOT / "configs/sd_objects.yaml", work / "site.yaml"]
        log_dir = Path(args.out).with_suffix(".logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        # cf reads the clean-span set (sampler none), mined like realera's before the closed forms run
        results = [run_stage("mine none", ["mine.py", "--concept", CONCEPT, "--sampler", "none",
                                           "--out", str(work / "out/mine_none.safetensors")], configs, log_dir,
                             args.device_standin)]
        for label, argv in stages(work, family):
            results.append(run_stage(label, argv, configs, log_dir, args.device_standin))
            print(f"{label}: {results[-1]['seconds']} s, peak GPU {results[-1]['peak_gpu_mib']} MiB", flush=True)
        g = site["generate"]
        ours = next(r["img_per_s"] for r in results if r["stage"] == "generate original")
        theirs = diffusers_rate(model, args.dtype, g, 4 * g["batch_size"], site["sd"].get("resolution"))
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
              "torch": torch.__version__, "dtype": args.dtype, "family": family,
              "model": args.model or (f"tiny {family}" if args.tiny else f"{family} architecture, random weights"),
              "stages": results,
              "generation": {"steps": g["steps"], "batch_size": g["batch_size"], "ours_img_per_s": ours,
                             "diffusers_img_per_s": round(theirs, 3),
                             "ratio": round(ours / theirs, 3) if ours and theirs else None},
              "total_seconds": round(time.time() - t_start, 1)}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}: {len(results)} stages in {report['total_seconds']} s; generation "
          f"{ours} img/s against diffusers' {theirs:.2f}")
    mixed = {r["stage"]: r["device_violations"] for r in results if r.get("device_violations")}
    if mixed:
        raise SystemExit("gpu_check: ops that would mix devices on a GPU:\n" + "\n".join(
            f"  {stage}: {where} ({n}x)" for stage, found in mixed.items() for where, n in found.items()))


if __name__ == "__main__":
    main()
