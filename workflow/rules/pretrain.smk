# Trains the mini world from scratch into {OUT}/pretrain (about 1.5 h on 2 CPU cores). Not part of
# `all`: the default run uses the committed weights (miniworld.weights). Point miniworld.weights at
# {OUT}/pretrain to use freshly trained ones.
rule pretrain:
    input:
        code=code_inputs("pretrain"),
        concepts="data/miniworld/concepts.json",
        init=lambda w: [config["pretrain"]["unet"]["init_from"]] if config["pretrain"]["unet"]["init_from"] else [],
    output:
        unet=f"{OUT}/pretrain/unet.safetensors",
        oracle=f"{OUT}/pretrain/oracle.safetensors",
        card=f"{OUT}/pretrain/card.json",
    params:
        p=as_json(lambda w: P.pretrain(config)),
        out=lambda w, output: os.path.dirname(output.unet),
    log:
        f"{OUT}/logs/pretrain.log",
    threads: res("pretrain", "threads")
    resources:
        **resources_of("pretrain"),
    shell:
        "{PY:q} stages/pretrain.py --out {params.out:q} --params {params.p:q} --threads {threads} > {log:q} 2>&1"
