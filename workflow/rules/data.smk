# Prompt sets that cannot ship in the repository, built from their official source (config `i2p`).
# Offline, with the source file absent, the run stops here, before any job, saying what to download.
from pathlib import Path

from erasure import datasets

I2P = config["i2p"]
I2P_PROMPTS = [I2P["prompts"]] if I2P["enabled"] else []

if I2P["enabled"] and not Path(I2P["prompts"]).is_file() and not Path(I2P["raw"]).is_file():
    if not datasets.reachable(I2P["url"]):
        raise WorkflowError(datasets.how_to_get("I2P", I2P["url"], I2P["raw"]))


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
        code=src("erasure/datasets.py"),
    output:
        csv=I2P["prompts"],
        sidecar=str(Path(I2P["prompts"]).with_suffix(".json")),
    params:
        concept=I2P["concept"],
        rows=I2P["rows"],
        sha256=I2P["sha256"],
    run:
        info = datasets.i2p_prompts(input.raw, output.csv, params.concept, params.rows, params.sha256)
        print(f"I2P: {info['rows']} prompts -> {output.csv} (sha256 {info['sha256']})")
