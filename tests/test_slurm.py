"""The SLURM path for real: `snakemake --profile profiles/slurm` against a live single-node cluster.

The cluster is the one `scripts/slurm/up.sh` brings up on loopback (munge, slurmctld, slurmd, one fake
GPU). If `sinfo` already answers, that cluster is used and left running; otherwise, with
ERASURE_SLURM_UP=1 and root (what .ci/run sets), the fixture starts one and stops it by PID at the end.
Anywhere else the live tests are skipped with the reason.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, forked_stages_env, miniworld_config, write_config

pytestmark = pytest.mark.slurm

GPU_RULES = {"train_lora", "generate", "score"}
CPU_RULES = {"mine", "audit", "closed_form", "remap", "report"}
# The live run: the unedited model and the plain closed form, six levels of sbatch jobs (each job pays
# seconds of submission, two Snakemake start-ups and polling), each image set drawn in two shards (config
# `shards`) and gathered by a generate job that needs no GPU. The full method's other rules (audit,
# train_lora) ask for their resources through the same helper; the dry run below checks every rule's.
SHARDS = 2
LIVE_GPU_RULES = {"generate_shard", "score"}
LIVE_CPU_RULES = {"mine", "closed_form", "remap", "generate", "report"}
# No accounting database on the loopback cluster: poll with squeue, and start polling quickly.
SLURM_FLAGS = ["--profile", "profiles/slurm", "--slurm-status-command", "squeue", "--seconds-between-status-checks", "1",
               "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--nolock"]


def _sinfo_idle():
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and "idle" in proc.stdout


@pytest.fixture(scope="module")
def cluster():
    if _sinfo_idle():
        yield "existing"
        return
    if os.environ.get("ERASURE_SLURM_UP") != "1" or os.geteuid() != 0:
        pytest.skip("no SLURM cluster answers `sinfo`; run scripts/slurm/up.sh as root on Debian "
                    "(or set ERASURE_SLURM_UP=1 as root, as .ci/run does) to run the live tests")
    up = subprocess.run(["bash", str(ROOT / "scripts/slurm/up.sh")], capture_output=True, text=True)
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    yield "started"
    subprocess.run(["bash", str(ROOT / "scripts/slurm/down.sh")], capture_output=True)


def start_snakemake(configfile, *args, env=None):
    # Targets and flags go before --configfile, which takes every value after it.
    cmd = [sys.executable, "-m", "snakemake", *args, "--configfile", str(configfile)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env or {**os.environ, "HF_HUB_OFFLINE": "1"})


def finished(proc):
    log = proc.communicate()[0]
    assert proc.returncode == 0, log[-6000:]
    return log


def snakemake(configfile, *args):
    return finished(start_snakemake(configfile, *args))


def submitted_jobs(log):
    """{slurm job id: (rule, TRES asked)} for every job the run submitted, read back from slurmctld."""
    jobs = {}
    for job_id in re.findall(r"submitted with SLURM jobid (\d+)", log):
        info = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
        rule = re.search(r"Comment=rule_([a-z_]+?)(?:_wildcards_\S*)?\s", info).group(1)
        state = re.search(r"JobState=(\w+)", info).group(1)
        assert state == "COMPLETED", info
        jobs[job_id] = (rule, re.search(r"TresPerJob=(\S+)", info).group(1) if "TresPerJob=" in info else "")
    return jobs


def run_config(tmp_path, name, run_methods=("original", "cf"), shards=1):
    config = miniworld_config(tmp_path, run_methods=list(run_methods), shards=shards)
    config["out_dir"] = str(tmp_path / name)
    config["export"]["methods"] = []   # the levels of sbatch jobs this file times; exports: tests/test_pipeline.py
    config["generate"]["batch_size"] = 4   # several batches per set, so that each shard draws some
    return config


def planned_jobs(log):
    """{rule: count} from a dry run's job-stats table."""
    table = log.split("Job stats:")[1]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M) if rule != "total"}


def file_hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in {".safetensors", ".png"}}


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    config = run_config(tmp, "slurm", shards=SHARDS)
    path = write_config(tmp, config, "slurm.yaml")
    remote = start_snakemake(path, "all", *SLURM_FLAGS, "--slurm-logdir", str(tmp / "slurm_logs"))
    # The local reference, unsharded, runs meanwhile (the sbatch run spends most of its time waiting on
    # the scheduler), its stages forked from the stage server: the sbatch jobs are real processes, so the
    # comparison below also holds the server's stages to real ones, byte for byte.
    local = start_snakemake(write_config(tmp, run_config(tmp, "local"), "local.yaml"), "all", "--cores", "1", "--nolock",
                            env=forked_stages_env())
    finished(local)
    return tmp, config, path, finished(remote)


def test_dry_run_with_the_slurm_profile_lists_gpu_resources(tmp_path):
    path = write_config(tmp_path, run_config(tmp_path, "out", run_methods=("original", "cf", "realera")))
    log = snakemake(path, "all", "-n", "--profile", "profiles/slurm", "--nolock")
    asked = {}
    for rule, resources in re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", log, flags=re.M):
        asked[rule] = int(re.search(r"\bgpu=(\d+)", resources).group(1)) if "gpu=" in resources else 0
    assert {r: asked[r] for r in GPU_RULES} == {r: 1 for r in GPU_RULES}, asked
    assert {r: asked[r] for r in CPU_RULES} == {r: 0 for r in CPU_RULES}, asked


def test_every_job_went_through_sbatch_and_gpu_rules_asked_for_a_gpu(slurm_run):
    _, _, _, log = slurm_run
    jobs = submitted_jobs(log)
    planned = int(re.search(r"^total\s+(\d+)", log, flags=re.M).group(1))
    assert len(jobs) == planned - 2  # all but the two local rules (all, prompts)
    # the erase/preserve set, closed form, remap, report; for each of the two image sets its shards,
    # the gathering generate job and score
    assert planned == 2 + 4 + 2 * (SHARDS + 2)
    rules = {rule for rule, _ in jobs.values()}
    assert rules == LIVE_GPU_RULES | LIVE_CPU_RULES
    for rule, tres in jobs.values():
        assert ("gpu:1" in tres) == (rule in LIVE_GPU_RULES), (rule, tres)


def test_the_sharded_slurm_run_equals_an_unsharded_local_run(slurm_run):
    tmp = slurm_run[0]
    local, remote = tmp / "local", tmp / "slurm"
    for name in ("summary.csv", "table.md", "per_prompt.csv"):
        assert (remote / "report" / name).read_text() == (local / "report" / name).read_text(), name
    hashes = file_hashes(remote)
    assert len(hashes) > 10
    assert hashes == file_hashes(local)
    manifests = sorted(p.relative_to(local) for p in local.glob("images/*/*.csv"))
    assert len(manifests) == 2 and all(len((remote / m).read_text().splitlines()) > 1 + 4 for m in manifests)
    for m in manifests:   # the same rows, in the same order, with the images under each run's out_dir
        assert (remote / m).read_text().replace(str(remote), "") == (local / m).read_text().replace(str(local), "")
    assert sorted(p.name for p in remote.glob("images/*/*.shard*.csv")) == sorted(
        f"{m.stem}.shard{k}.csv" for m in manifests for k in range(SHARDS))


def test_a_changed_parameter_resubmits_only_the_affected_jobs(slurm_run):
    # Planned with the SLURM profile against the outputs the sbatch jobs wrote: Snakemake reads their
    # metadata, so a changed guidance scale plans only generation onwards. (Running those jobs again would
    # test sbatch a second time and nothing more; the local DAG tests check what reruns produce.)
    tmp, config, _, _ = slurm_run
    config["generate"]["guidance"] = 4.0
    path = write_config(tmp, config, "slurm_changed.yaml")
    jobs = planned_jobs(snakemake(path, "all", "-n", *SLURM_FLAGS))
    n_sets = len(config["run_methods"])  # the unedited model's images, and one set per edit method and concept
    assert jobs == {"generate_shard": SHARDS * n_sets, "generate": n_sets, "score": n_sets, "report": 1, "all": 1}, jobs
