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
    threads: 1
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
        gpu=res("mine", "gpu"),
    shell:
        "{PY} stages/mine.py --params {params.p:q} --concept {wildcards.concept} --sampler {wildcards.sampler}"
        " --out {output.embeddings:q} --threads {threads} > {log:q} 2>&1"


rule closed_form:
    input:
        src("closed_form", "erasure/closed_form.py", "erasure/embedding_set.py", *PACKAGE, *WORLD),
        embeddings=lambda w: f"{OUT}/mine/{config['methods'][w.method]['mining']}/{w.concept}.safetensors",
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    params:
        p=as_json(lambda w: P.closed_form(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/closed_form/{{method}}/{{concept}}.log",
    threads: 1
    resources:
        mem_mb=res("closed_form", "mem_mb"),
        runtime=res("closed_form", "runtime"),
        gpu=res("closed_form", "gpu"),
    shell:
        "{PY} stages/closed_form.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --embeddings {input.embeddings:q} --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule train_lora:
    input:
        src("train_lora", "erasure/lora.py", "erasure/sampling.py", "erasure/edits.py", *PACKAGE, *WORLD),
        deltas=rules.closed_form.output.deltas,
        embeddings=lambda w: f"{OUT}/mine/{config['methods'][w.method]['mining']}/{w.concept}.safetensors",
    output:
        lora=f"{OUT}/lora/{{method}}/{{concept}}/pytorch_lora_weights.safetensors",
    params:
        p=as_json(lambda w: P.train_lora(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/train_lora/{{method}}/{{concept}}.log",
    threads: 1
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
    threads: 1
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
        gpu=0,
    shell:
        "{PY} stages/audit.py --embeddings {input.embeddings:q} --out {OUT}/mine/{wildcards.sampler}/{wildcards.concept}_audit"
        " > {log:q} 2>&1"
