# Trains the mini world from scratch into {OUT}/pretrain (about 1.5 h on 2 CPU cores). Not part of
# `all`: the default run uses the committed weights (miniworld.weights). Point miniworld.weights at
# {OUT}/pretrain to use freshly trained ones.
rule pretrain:
    input:
        src("pretrain", "erasure/pretrain.py", "erasure/oracle.py", "erasure/render.py", "erasure/sampling.py",
            "erasure/miniworld.py", "erasure/text.py", "data/miniworld/concepts.json"),
    output:
        unet=f"{OUT}/pretrain/unet.safetensors",
        oracle=f"{OUT}/pretrain/oracle.safetensors",
        card=f"{OUT}/pretrain/card.json",
    params:
        p=json.dumps(config.get("pretrain", {}), sort_keys=True),
    log:
        f"{OUT}/logs/pretrain.log",
    threads: res("pretrain", "threads")
    resources:
        mem_mb=res("pretrain", "mem_mb"),
        runtime=res("pretrain", "runtime"),
        gpu=res("pretrain", "gpu"),
    shell:
        "{PY} stages/pretrain.py --out {OUT}/pretrain --params {params.p:q} --threads {threads} > {log:q} 2>&1"
