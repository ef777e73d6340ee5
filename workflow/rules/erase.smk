rule mine:
    input:
        src("mine", "erasure/mining.py", "erasure/embedding_set.py", *PACKAGE, *WORLD),
    output:
        embeddings=f"{OUT}/mine/{{sampler}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/mine/{{sampler}}/{{concept}}.json",
    params:
        p=as_json(lambda w: P.mine(config, w.sampler, w.concept)),
    log:
        f"{OUT}/logs/mine/{{sampler}}/{{concept}}.log",
    threads: res("mine", "threads")
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
        gpu=res("mine", "gpu"),
    shell:
        "{PY} stages/mine.py --params {params.p:q} --concept {wildcards.concept} --sampler {wildcards.sampler}"
        " --out {output.embeddings:q} --threads {threads} > {log:q} 2>&1"


def mined_set(w):
    """The embedding set a RealEra-kind method's closed form reads (UCE builds its rows from prompts)."""
    if METHODS[w.method]["kind"] != "realera":
        return {}
    return {"embeddings": f"{OUT}/mine/{METHODS[w.method]['mining']}/{w.concept}.safetensors"}


rule closed_form:
    input:
        unpack(mined_set),
        src("closed_form", "erasure/closed_form.py", "erasure/embedding_set.py", "erasure/uce.py", *PACKAGE, *WORLD,
            *UNET_WEIGHTS),
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    wildcard_constraints:
        method=CLOSED_FORM_METHODS,
    params:
        p=as_json(lambda w: P.closed_form(config, w.method, w.concept)),
        embeddings=lambda w, input: f"--embeddings {shlex.quote(input.embeddings)}" if "embeddings" in input.keys() else "",
    log:
        f"{OUT}/logs/closed_form/{{method}}/{{concept}}.log",
    threads: res("closed_form", "threads")
    resources:
        mem_mb=res("closed_form", "mem_mb"),
        runtime=res("closed_form", "runtime"),
        gpu=res("closed_form", "gpu"),
    shell:
        "{PY} stages/closed_form.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " {params.embeddings} --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule train_esd:
    input:
        src("train_esd", "erasure/esd.py", "erasure/checkpoint.py", *PACKAGE, *WORLD, *UNET_WEIGHTS),
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
    wildcard_constraints:
        method=ESD_METHODS,
    params:
        p=as_json(lambda w: P.train_esd(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/train_esd/{{method}}/{{concept}}.log",
    threads: res("train_esd", "threads")
    resources:
        mem_mb=res("train_esd", "mem_mb"),
        runtime=res("train_esd", "runtime"),
        gpu=res("train_esd", "gpu"),
    shell:
        "{PY} stages/train_esd.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule sepme:
    input:
        src("sepme", "erasure/sepme.py", "erasure/mining.py", *PACKAGE, *WORLD, *UNET_WEIGHTS),
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        increments=directory(f"{OUT}/sepme/{{method}}/{{concept}}"),
    wildcard_constraints:
        method=SEPME_METHODS,
    params:
        p=as_json(lambda w: P.sepme(config, [P.concept_by_slug(config, w.concept)] + METHODS[w.method].get("known", []))),
        erase=lambda w: shlex.quote(P.concept_by_slug(config, w.concept)),
    log:
        f"{OUT}/logs/sepme/{{method}}/{{concept}}.log",
    threads: res("sepme", "threads")
    resources:
        mem_mb=res("sepme", "mem_mb"),
        runtime=res("sepme", "runtime"),
        gpu=res("sepme", "gpu"),
    shell:
        "{PY} stages/sepme.py --params {params.p:q} --increments-dir {output.increments:q} --erase {params.erase}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule train_lora:
    input:
        src("train_lora", "erasure/lora.py", "erasure/sampling.py", "erasure/edits.py", *PACKAGE, *WORLD,
            *UNET_WEIGHTS),
        deltas=rules.closed_form.output.deltas,
        embeddings=lambda w: f"{OUT}/mine/{config['methods'][w.method]['mining']}/{w.concept}.safetensors",
    output:
        lora=f"{OUT}/lora/{{method}}/{{concept}}/pytorch_lora_weights.safetensors",
    params:
        p=as_json(lambda w: P.train_lora(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/train_lora/{{method}}/{{concept}}.log",
    threads: res("train_lora", "threads")
    resources:
        mem_mb=res("train_lora", "mem_mb"),
        runtime=res("train_lora", "runtime"),
        gpu=res("train_lora", "gpu"),
    shell:
        "{PY} stages/train_lora.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --deltas {input.deltas:q} --embeddings {input.embeddings:q}"
        " --out {output.lora:q} --threads {threads} > {log:q} 2>&1"


rule audit:
    input:
        src("audit", "erasure/embedding_set.py", *PACKAGE),
        embeddings=rules.mine.output.embeddings,
    output:
        f"{OUT}/mine/{{sampler}}/{{concept}}_audit/audit.md",
    log:
        f"{OUT}/logs/audit/{{sampler}}/{{concept}}.log",
    threads: res("mine", "threads")
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
        gpu=0,
    shell:
        "{PY} stages/audit.py --embeddings {input.embeddings:q} --out {OUT}/mine/{wildcards.sampler}/{wildcards.concept}_audit"
        " > {log:q} 2>&1"
