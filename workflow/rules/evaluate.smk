def edit_inputs(w):
    """The edit files a (method, concept) image set depends on: none for the unedited model.
    SepME set models are method set_<set>, concept <variant> (sepme.smk)."""
    if w.method == "original":
        return {}
    if w.method.startswith("set_"):
        return {"deltas": f"{OUT}/sepme_sets/{w.method[4:]}/{w.concept}.safetensors"}
    files = {"deltas": deltas_path(w.method, w.concept)}
    if METHODS[w.method].get("lora"):
        files["lora"] = f"{lora_dir(w.method, w.concept)}/pytorch_lora_weights.safetensors"
    return files


def associated_args(w):
    """--associated-of flags for a SepME set model: with generate.other_associated false, only the
    set's associated prompts are drawn (the stage handles single concepts itself)."""
    if not w.method.startswith("set_") or config["generate"]["other_associated"]:
        return ""
    return " ".join(f"--associated-of {shlex.quote(n)}" for n in config["sepme_sets"][w.method[4:]])


def edit_args(input):
    """Command-line flags for the edit files, shell-quoted."""
    args = f"--deltas {shlex.quote(input.deltas)}" if "deltas" in input.keys() else ""
    if "lora" in input.keys():
        args += f" --lora {shlex.quote(os.path.dirname(input.lora))}"
    return args


rule prompts:
    input:
        config["extra_prompts"],
        DATASET_PROMPTS,
        src("erasure/config.py"),
    output:
        f"{OUT}/prompts.csv",
    params:
        # Built-in and extra rows; I2P's and COCO's enter by their files (input above), built by their rules.
        rows=lambda w: P.prompt_table(config, datasets=False),
        i2p=I2P if I2P["enabled"] else None,
        coco={k: COCO[k] for k in ("raw", "prompts", "sha256", "rows")} if COCO["enabled"] else None,
    run:
        from erasure import io
        rows = P.prompt_table(config)
        columns = ["id", "concept", "kind", "prompt", "seed"] + (["images"] if any("images" in r for r in rows) else [])
        io.write_csv(output[0], columns, [[row.get(c, "") for c in columns] for row in rows])


rule generate:
    input:
        unpack(edit_inputs),
        src("generate", "erasure/sampling.py", "erasure/edits.py", *PACKAGE, *WORLD, *UNET_WEIGHTS),
        prompts=rules.prompts.output[0],
    output:
        manifest=f"{OUT}/images/{{method}}/{{concept}}.csv",
    params:
        p=as_json(lambda w: P.generate(config, w.method)),
        edit=lambda w, input: edit_args(input),
        associated=associated_args,
    log:
        f"{OUT}/logs/generate/{{method}}/{{concept}}.log",
    threads: res("generate", "threads")
    resources:
        mem_mb=res("generate", "mem_mb"),
        runtime=res("generate", "runtime"),
        gpu=res("generate", "gpu"),
    shell:
        "{PY} stages/generate.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --prompts {input.prompts:q} {params.edit} {params.associated} --out {output.manifest:q}"
        " --threads {threads} > {log:q} 2>&1"


rule score:
    input:
        src("score", "erasure/scoring.py", "erasure/oracle.py", *PACKAGE, *ORACLE_WEIGHTS),
        manifest=rules.generate.output.manifest,
    output:
        scores=f"{OUT}/scores/{{method}}/{{concept}}.csv",
        prompts=f"{OUT}/scores/{{method}}/{{concept}}.prompts.csv",
    params:
        p=as_json(lambda w: P.score(config)),
    log:
        f"{OUT}/logs/score/{{method}}/{{concept}}.log",
    threads: res("score", "threads")
    resources:
        mem_mb=res("score", "mem_mb"),
        runtime=res("score", "runtime"),
        gpu=res("score", "gpu"),
    shell:
        "{PY} stages/score.py --params {params.p:q} --manifest {input.manifest:q} --out {output.scores:q}"
        " --threads {threads} > {log:q} 2>&1"


rule remap:
    input:
        unpack(edit_inputs),
        src("remap", "erasure/closed_form.py", "erasure/edits.py", *PACKAGE, *WORLD, *UNET_WEIGHTS),
        prompts=rules.prompts.output[0],
    output:
        f"{OUT}/remap/{{method}}/{{concept}}.json",
    params:
        p=as_json(lambda w: P.remap(config, w.concept)),
        edit=lambda w, input: edit_args(input),
    log:
        f"{OUT}/logs/remap/{{method}}/{{concept}}.log",
    threads: res("remap", "threads")
    resources:
        mem_mb=res("remap", "mem_mb"),
        runtime=res("remap", "runtime"),
        gpu=res("remap", "gpu"),
    shell:
        "{PY} stages/remap.py --params {params.p:q} --concept {wildcards.concept} --prompts {input.prompts:q}"
        " {params.edit} --out {output:q} --threads {threads} > {log:q} 2>&1"


FID_REFERENCE = f"{OUT}/quality/reference.safetensors"


rule fid_reference:
    input:
        src("fid_reference", "erasure/quality.py", *PACKAGE),
    output:
        FID_REFERENCE,
    params:
        p=as_json(lambda w: P.fid_reference(config)),
    log:
        f"{OUT}/logs/fid_reference.log",
    threads: res("quality", "threads")
    resources:
        mem_mb=res("quality", "mem_mb"),
        runtime=res("quality", "runtime"),
        gpu=res("quality", "gpu"),
    shell:
        "{PY} stages/fid_reference.py --params {params.p:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule quality:
    input:
        src("quality", "erasure/quality.py", "erasure/scoring.py", *PACKAGE),
        manifest=rules.generate.output.manifest,
        reference=[FID_REFERENCE] if COCO["reference_dir"] else [],
    output:
        f"{OUT}/quality/{{method}}/{{concept}}.json",
    params:
        p=as_json(lambda w: P.quality(config)),
        reference=lambda w, input: f"--reference {shlex.quote(input.reference[0])}" if input.reference else "",
    log:
        f"{OUT}/logs/quality/{{method}}/{{concept}}.log",
    threads: res("quality", "threads")
    resources:
        mem_mb=res("quality", "mem_mb"),
        runtime=res("quality", "runtime"),
        gpu=res("quality", "gpu"),
    shell:
        "{PY} stages/quality.py --params {params.p:q} --manifest {input.manifest:q} {params.reference}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


def report_inputs(w):
    sets = [("original", "all")] if "original" in config["run_methods"] else []
    sets += [(m, c) for m in EDIT_METHODS for c in ERASE]
    files = [f"{OUT}/scores/{m}/{c}.csv" for m, c in sets]
    files += expand(f"{OUT}/remap/{{method}}/{{concept}}.json", method=EDIT_METHODS, concept=ERASE)
    if COCO["enabled"]:
        files += [f"{OUT}/quality/{m}/{c}.json" for m, c in sets]
    return files


rule report:
    input:
        report_inputs,
        src("report", "erasure/report.py", *PACKAGE),
        prompts=rules.prompts.output[0],
    output:
        summary=f"{REPORT}/summary.csv",
        table=f"{REPORT}/table.md",
        html=f"{REPORT}/index.html",
        per_prompt=f"{REPORT}/per_prompt.csv",
    params:
        p=as_json(lambda w: P.report(config)),
    log:
        f"{OUT}/logs/{config['report']['name']}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=res("report", "gpu"),
    shell:
        "{PY} stages/report.py --params {params.p:q} --prompts {input.prompts:q} --scores-dir {OUT}/scores"
        " --remap-dir {OUT}/remap --quality-dir {OUT}/quality --out {REPORT} --threads {threads} > {log:q} 2>&1"
