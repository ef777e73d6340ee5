# The multi-concept SepME experiment (config sepme_sets, sepme_restore): for each set, one increment per
# concept; then three models per set, each generated and scored like any method (method set_<set>):
#   all      every increment of the set (the set erased)
#   restore  every increment but sepme_restore's (that concept restored, no retraining)
#   joint    one closed-form solve for the whole set (not separable; the comparison row)


def set_variants(name):
    variants = ["all"]
    if len(config["sepme_sets"][name]) > 1:
        variants += ["joint"] + (["restore"] if config["sepme_restore"] else [])
    return variants


def set_concept_args(name):
    return " ".join(f"--concepts {shlex.quote(c)}" for c in config["sepme_sets"][name])


rule sepme_set:
    input:
        src("sepme", "erasure/sepme.py", "erasure/mining.py", "erasure/closed_form.py", *PACKAGE, *WORLD,
            *UNET_WEIGHTS),
    output:
        increments=directory(f"{OUT}/sepme_sets/{{set}}/increments"),
        all=f"{OUT}/sepme_sets/{{set}}/all.safetensors",
        joint=f"{OUT}/sepme_sets/{{set}}/joint.safetensors",
    params:
        p=as_json(lambda w: P.sepme(config, config["sepme_sets"][w.set])),
        concepts=lambda w: set_concept_args(w.set),
    log:
        f"{OUT}/logs/sepme_set/{{set}}.log",
    threads: res("sepme_set", "threads")
    resources:
        mem_mb=res("sepme_set", "mem_mb"),
        runtime=res("sepme_set", "runtime"),
        gpu=res("sepme_set", "gpu"),
    shell:
        "{PY} stages/sepme.py --params {params.p:q} {params.concepts} --increments-dir {output.increments:q}"
        " --out {output.all:q} --joint {output.joint:q} --threads {threads} > {log:q} 2>&1"


rule sepme_restore:
    input:
        src("sepme", "erasure/sepme.py", *PACKAGE, *WORLD, *UNET_WEIGHTS),
        increments=rules.sepme_set.output.increments,
    output:
        f"{OUT}/sepme_sets/{{set}}/restore.safetensors",
    params:
        keep=lambda w: " ".join(f"--erase {shlex.quote(c)}" for c in config["sepme_sets"][w.set]
                                if c != config["sepme_restore"]),
    log:
        f"{OUT}/logs/sepme_restore/{{set}}.log",
    threads: res("sepme_set", "threads")
    resources:
        mem_mb=res("sepme_set", "mem_mb"),
        runtime=res("sepme_set", "runtime"),
        gpu=0,
    shell:
        "{PY} stages/sepme.py --increments-dir {input.increments:q} {params.keep} --out {output:q} > {log:q} 2>&1"


def sepme_scores(w):
    files = [f"{OUT}/scores/original/all.csv"]
    for name in config["sepme_sets"]:
        files += [f"{OUT}/scores/set_{name}/{v}.csv" for v in set_variants(name)]
    return files


rule sepme_table:
    input:
        sepme_scores,
        src("sepme_table", "erasure/report.py", *PACKAGE),
    output:
        csv=f"{OUT}/report/sepme.csv",
        md=f"{OUT}/report/sepme.md",
    params:
        p=lambda w: json.dumps({"sets": config["sepme_sets"], "restore": config["sepme_restore"],
                                "images_per_prompt": config["generate"]["images_per_prompt"]}, sort_keys=True),
    log:
        f"{OUT}/logs/sepme_table.log",
    shell:
        "{PY} stages/sepme_table.py --params {params.p:q} --scores-dir {OUT}/scores"
        " --out-csv {output.csv:q} --out-md {output.md:q} > {log:q} 2>&1"
