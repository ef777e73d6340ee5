rule mine:
    input:
        code=code_inputs("mine"),
    output:
        embeddings=f"{OUT}/mine/{{sampler}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/mine/{{sampler}}/{{concept}}.json",
    params:
        p=as_json(lambda w: P.mine(config, w.sampler, w.concept)),
    log:
        f"{OUT}/logs/mine/{{sampler}}/{{concept}}.log",
    threads: res("mine", "threads")
    resources:
        **resources_of("mine"),
    shell:
        "{PY:q} stages/mine.py --params {params.p:q} --concept {wildcards.concept} --sampler {wildcards.sampler}"
        " --out {output.embeddings:q} --threads {threads} > {log:q} 2>&1"


def mined_set(w):
    """The embedding set a RealEra-kind method's closed form reads (UCE builds its rows from prompts)."""
    if METHODS[w.method]["kind"] != "realera":
        return {}
    return {"embeddings": f"{OUT}/mine/{METHODS[w.method]['mining']}/{w.concept}.safetensors"}


rule closed_form:
    input:
        unpack(mined_set),
        code=code_inputs("closed_form"),
        weights=UNET_WEIGHTS,
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
        **resources_of("closed_form"),
    shell:
        "{PY:q} stages/closed_form.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " {params.embeddings} --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule rece:
    input:
        code=code_inputs("rece"),
        weights=UNET_WEIGHTS,
        base=lambda w: deltas_path(METHODS[w.method]["base"], w.concept),
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    wildcard_constraints:
        method=RECE_METHODS,
    params:
        p=as_json(lambda w: P.rece(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/rece/{{method}}/{{concept}}.log",
    threads: res("closed_form", "threads")
    resources:
        **resources_of("closed_form"),
    shell:
        "{PY:q} stages/rece.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --base {input.base:q} --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule speed:
    input:
        code=code_inputs("speed"),
        weights=UNET_WEIGHTS,
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    wildcard_constraints:
        method=SPEED_METHODS,
    params:
        p=as_json(lambda w: P.speed(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/speed/{{method}}/{{concept}}.log",
    threads: res("closed_form", "threads")
    resources:
        **resources_of("closed_form"),
    shell:
        "{PY:q} stages/speed.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule mace:
    input:
        code=code_inputs("mace"),
        weights=UNET_WEIGHTS,
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    wildcard_constraints:
        method=MACE_METHODS,
    params:
        p=as_json(lambda w: P.mace(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/mace/{{method}}/{{concept}}.log",
    threads: res("train_lora", "threads")
    resources:
        **resources_of("train_lora"),   # draws images and trains a LoRA: a GPU job
    shell:
        "{PY:q} stages/mace.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule adavd:
    input:
        code=code_inputs("adavd"),
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        sidecar=f"{OUT}/edit/{{method}}/{{concept}}.json",
    wildcard_constraints:
        method=ADAVD_METHODS,
    params:
        p=as_json(lambda w: P.adavd(config, w.method, w.concept)),
    log:
        f"{OUT}/logs/adavd/{{method}}/{{concept}}.log",
    threads: res("mine", "threads")
    resources:
        **resources_of("mine"),  # text encoding only: AdaVD's cost is in generation
    shell:
        "{PY:q} stages/adavd.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule train_esd:
    input:
        code=code_inputs("train_esd"),
        weights=UNET_WEIGHTS,
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
        **resources_of("train_esd"),
    shell:
        "{PY:q} stages/train_esd.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule sepme:
    input:
        code=code_inputs("sepme"),
        weights=UNET_WEIGHTS,
    output:
        deltas=f"{OUT}/edit/{{method}}/{{concept}}.safetensors",
        increments=directory(f"{OUT}/sepme/{{method}}/{{concept}}"),
    wildcard_constraints:
        method=SEPME_METHODS,
    params:
        p=as_json(lambda w: P.sepme_method(config, w.method, w.concept)),
        erase=lambda w: shlex.quote(prompts.concept_by_slug(config, w.concept)),
    log:
        f"{OUT}/logs/sepme/{{method}}/{{concept}}.log",
    threads: res("sepme", "threads")
    resources:
        **resources_of("sepme"),
    shell:
        "{PY:q} stages/sepme.py --params {params.p:q} --increments-dir {output.increments:q} --erase {params.erase}"
        " --out {output.deltas:q} --threads {threads} > {log:q} 2>&1"


rule train_lora:
    input:
        code=code_inputs("train_lora"),
        weights=UNET_WEIGHTS,
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
        **resources_of("train_lora"),
    shell:
        "{PY:q} stages/train_lora.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --deltas {input.deltas:q} --embeddings {input.embeddings:q}"
        " --out {output.lora:q} --threads {threads} > {log:q} 2>&1"


rule audit:
    input:
        code=code_inputs("audit"),
        embeddings=rules.mine.output.embeddings,
    output:
        report(f"{OUT}/mine/{{sampler}}/{{concept}}_audit/audit.md", caption="../report/audit.rst", category="Mining",
               labels={"sampler": "{sampler}", "erased": "{concept}"}),
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{OUT}/logs/audit/{{sampler}}/{{concept}}.log",
    threads: res("mine", "threads")
    resources:
        **resources_of("mine", gpu=0),
    shell:
        "{PY:q} stages/audit.py --embeddings {input.embeddings:q} --out {params.out:q}"
        " > {log:q} 2>&1"
