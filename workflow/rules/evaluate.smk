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
        code=code_inputs("erasure/params.py", "erasure/io.py"),
    output:
        f"{OUT}/prompts.csv",
    params:
        # Built-in and extra rows; I2P's and COCO's enter by their files (input above), built by their rules.
        rows=lambda w: prompts.prompt_table(config, datasets=False),
        i2p=I2P if I2P["enabled"] else None,
        coco={k: COCO[k] for k in ("raw", "prompts", "sha256", "rows")} if COCO["enabled"] else None,
    run:
        from erasure import io
        rows = prompts.prompt_table(config)
        columns = ["id", "concept", "kind", "prompt", "seed", "split"] + (["images"] if any("images" in r for r in rows) else [])
        io.write_csv(output[0], columns, [[row.get(c, "") for c in columns] for row in rows])


# config `shards` > 1: each image set is drawn by that many generate_shard jobs (every n-th batch each),
# and the generate job only gathers their images into the manifest: it finds every image drawn, loads no
# model and asks for no GPU.
SHARDS = config["shards"]


def set_manifest(w):
    return f"{OUT}/images/{w.method}/{w.concept}.csv"


def shard_manifests(w):
    return [f"{OUT}/images/{w.method}/{w.concept}.shard{k}.csv" for k in range(SHARDS)] if SHARDS > 1 else []


# What drawing an image set reads, and the parameters of its command: the generate rule and its
# generate_shard jobs share them.
def generate_inputs(w):
    return {**edit_inputs(w), "code": list(code_inputs("generate")), "weights": UNET_WEIGHTS,
            "prompts": rules.prompts.output[0]}


GENERATE_PARAMS = dict(
    p=as_json(lambda w: P.generate(config, w.method)),
    edit=lambda w, input: edit_args(input),
    associated=associated_args,
)


if SHARDS > 1:

    rule generate_shard:
        input:
            unpack(generate_inputs),
        output:
            manifest=f"{OUT}/images/{{method}}/{{concept}}.shard{{shard}}.csv",
        wildcard_constraints:
            shard=r"\d+",
        params:
            **GENERATE_PARAMS,
            set_manifest=set_manifest,
        log:
            f"{OUT}/logs/generate/{{method}}/{{concept}}.shard{{shard}}.log",
        threads: res("generate", "threads")
        resources:
            **resources_of("generate"),
        shell:
            "{PY:q} stages/generate.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
            " --prompts {input.prompts:q} {params.edit} {params.associated} --out {params.set_manifest:q}"
            " --shard {wildcards.shard}/{SHARDS} --shard-out {output.manifest:q} --threads {threads} > {log:q} 2>&1"


rule generate:
    input:
        unpack(generate_inputs),
        shards=shard_manifests,
    output:
        manifest=f"{OUT}/images/{{method}}/{{concept}}.csv",
    params:
        **GENERATE_PARAMS,
    log:
        f"{OUT}/logs/generate/{{method}}/{{concept}}.log",
    threads: res("generate", "threads")
    resources:
        **(resources_of("generate") if SHARDS == 1 else resources_of("report")),
    shell:
        "{PY:q} stages/generate.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " --prompts {input.prompts:q} {params.edit} {params.associated} --out {output.manifest:q}"
        " --threads {threads} > {log:q} 2>&1"


rule score:
    input:
        code=code_inputs("score"),
        weights=ORACLE_WEIGHTS,
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
        **resources_of("score"),
    shell:
        "{PY:q} stages/score.py --params {params.p:q} --manifest {input.manifest:q} --out {output.scores:q}"
        " --threads {threads} > {log:q} 2>&1"


rule remap:
    input:
        unpack(edit_inputs),
        code=code_inputs("remap"),
        weights=UNET_WEIGHTS,
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
        **resources_of("remap"),
    shell:
        "{PY:q} stages/remap.py --params {params.p:q} --concept {wildcards.concept} --prompts {input.prompts:q}"
        " {params.edit} --out {output:q} --threads {threads} > {log:q} 2>&1"


FID_REFERENCE = f"{OUT}/quality/reference.safetensors"


rule fid_reference:
    input:
        code=code_inputs("fid_reference"),
    output:
        FID_REFERENCE,
    params:
        p=as_json(lambda w: P.fid_reference(config)),
    log:
        f"{OUT}/logs/fid_reference.log",
    threads: res("quality", "threads")
    resources:
        **resources_of("quality"),
    shell:
        "{PY:q} stages/fid_reference.py --params {params.p:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule quality:
    input:
        code=code_inputs("quality"),
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
        **resources_of("quality"),
    shell:
        "{PY:q} stages/quality.py --params {params.p:q} --manifest {input.manifest:q} {params.reference}"
        " --out {output:q} --threads {threads} > {log:q} 2>&1"


def report_inputs(w):
    sets = [("original", "all")] if "original" in config["run_methods"] else []
    sets += [(m, c) for m in EDIT_METHODS for c in ERASE]
    files = [f"{OUT}/scores/{m}/{c}.csv" for m, c in sets]
    files += expand(f"{OUT}/remap/{{method}}/{{concept}}.json", method=WEIGHT_METHODS, concept=ERASE)
    if COCO["enabled"]:
        files += [f"{OUT}/quality/{m}/{c}.json" for m, c in sets]
    return files


# The grids write_report draws: one of the unedited model, one per edited model and erased concept.
REPORT_GRIDS = ([f"{REPORT}/grids/original_all.png"] if "original" in config["run_methods"] else []) + [
    f"{REPORT}/grids/{m}_{c}.png" for m in EDIT_METHODS for c in ERASE]


rule report:
    input:
        report_inputs,
        code=code_inputs("report"),
        prompts=rules.prompts.output[0],
    output:
        summary=report(f"{REPORT}/summary.csv", caption="../report/summary.rst", category="Report"),
        table=f"{REPORT}/table.md",
        html=f"{REPORT}/index.html",
        per_prompt=report(f"{REPORT}/per_prompt.csv", caption="../report/per_prompt.rst", category="Report"),
        plots=[report(f"{REPORT}/plots/accuracy_{c}.png", caption="../report/accuracy.rst", category="Report",
                      subcategory="Accuracy per prompt", labels={"erased": c}) for c in ERASE],
        grids=[report(f, caption="../report/grids.rst", category="Report", subcategory="Image grids",
                      labels={"grid": Path(f).stem}) for f in REPORT_GRIDS],
        frontier=[report(f"{REPORT}/frontier.{x}", caption="../report/frontier.rst", category="Report",
                         subcategory="Trade-off frontier", labels={"file": f"frontier.{x}"})
                  for x in ("csv", "png")] if config["report"]["frontier"] else [],
    params:
        p=as_json(lambda w: P.report(config)),
        out=OUT,
        report=REPORT,
    log:
        f"{OUT}/logs/{config['report']['name']}.log",
    threads: res("report", "threads")
    resources:
        **resources_of("report"),
    shell:
        "{PY:q} stages/report.py --params {params.p:q} --prompts {input.prompts:q} --scores-dir {params.out:q}/scores"
        " --remap-dir {params.out:q}/remap --quality-dir {params.out:q}/quality --out {params.report:q} --threads {threads} > {log:q} 2>&1"
