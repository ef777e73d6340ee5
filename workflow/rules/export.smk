# The erased models as deliverables: outputs/<run>/export/<method>/<concept>, a directory plain diffusers
# loads (the edit merged into the UNet) with its model card; a SepME set: export/set_<set>/<all|restore|joint>.
EXPORT_METHODS = WEIGHT_METHODS if config["export"]["methods"] is None else config["export"]["methods"]
EXPORTS = [f"{OUT}/export/{m}/{c}" for m in EXPORT_METHODS for c in ERASE]


def export_evidence(w):
    """The card's tables: the run's metrics and, for an attacked model, its attack success rates."""
    files = {}
    if w.method.startswith("set_"):
        files["summary"] = f"{OUT}/report/sepme.csv"
    elif w.method in config["run_methods"]:
        files["summary"] = f"{REPORT}/summary.csv"
    if ATTACKS and w.method in ATTACKED:
        files["robustness"] = f"{REPORT}/robustness.csv"
    return files


def export_command(w):
    """The command that remakes this export, for its card."""
    configs = [arg for f in workflow.overwrite_configfiles for arg in ("--configfile", str(f))]
    return shlex.join(["snakemake", "--cores", "all", *configs, f"{OUT}/export/{w.method}/{w.concept}"])


rule export:
    input:
        unpack(edit_inputs),
        unpack(export_evidence),
        code=code_inputs("export"),
        weights=UNET_WEIGHTS,
    output:
        directory(f"{OUT}/export/{{method}}/{{concept}}"),
    params:
        p=as_json(lambda w: P.export(config, w.method, w.concept)),
        edit=lambda w, input: edit_args(input),
        evidence=lambda w, input: " ".join(f"--{k} {shlex.quote(input[k])}" for k in ("summary", "robustness")
                                           if k in input.keys()),
        command=export_command,
    log:
        f"{OUT}/logs/export/{{method}}/{{concept}}.log",
    threads: res("export", "threads")
    resources:
        **resources_of("export"),
    shell:
        "{PY:q} stages/export.py --params {params.p:q} --method {wildcards.method} --concept {wildcards.concept}"
        " {params.edit} {params.evidence} --command {params.command:q} --out {output:q} --threads {threads}"
        " > {log:q} 2>&1"
