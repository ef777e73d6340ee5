# Prompt sets that cannot ship in the repository, built from their official source (config `i2p`, `coco`).
# Offline, with a source file absent, the run stops here, before any job, saying what to download.
from pathlib import Path

from erasure import datasets, io
from erasure.prompts import dataset_prompt_files

I2P = config["i2p"]
COCO = config["coco"]
DATASET_PROMPTS = dataset_prompt_files(config)

for name, d in (("I2P", I2P), ("COCO-30k", COCO)):
    if d["enabled"] and not Path(d["prompts"]).is_file() and not Path(d["raw"]).is_file():
        if not datasets.reachable(d["url"]):
            raise WorkflowError(datasets.how_to_get(name, d["url"], d["raw"]))


rule fetch_i2p:
    output:
        I2P["raw"],
    params:
        url=I2P["url"],
        sha256=I2P["sha256"],
    run:
        digest = datasets.fetch(params.url, output[0], params.sha256, "i2p.sha256")
        print(f"I2P: {output[0]} sha256 {digest}")


rule i2p_prompts:
    input:
        raw=I2P["raw"],
        code=code_inputs("erasure/datasets.py"),
    output:
        csv=I2P["prompts"],
        sidecar=str(io.sidecar_path(I2P["prompts"])),
    params:
        concept=I2P["concept"],
        rows=I2P["rows"],
        sha256=I2P["sha256"],
    run:
        info = datasets.i2p_prompts(input.raw, output.csv, params.concept, params.rows, params.sha256)
        print(f"I2P: {info['rows']} prompts -> {output.csv} (sha256 {info['sha256']})")


rule fetch_coco:
    output:
        COCO["raw"],
    params:
        url=COCO["url"],
        sha256=COCO["sha256"],
    run:
        digest = datasets.fetch(params.url, output[0], params.sha256, "coco.sha256")
        print(f"COCO-30k: {output[0]} sha256 {digest}")


rule coco_prompts:
    input:
        raw=COCO["raw"],
        code=code_inputs("erasure/datasets.py"),
    output:
        csv=COCO["prompts"],
        sidecar=str(io.sidecar_path(COCO["prompts"])),
    params:
        rows=COCO["rows"],
        seed=config["seed"],
        sha256=COCO["sha256"],
    run:
        info = datasets.coco_prompts(input.raw, output.csv, params.rows, params.seed, params.sha256)
        print(f"COCO-30k: {info['rows']} captions -> {output.csv} (sha256 {info['sha256']})")
