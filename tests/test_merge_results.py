"""scripts/merge_results.py: one table from parts run by different configs, averages recomputed."""
import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("merge_results", ROOT / "scripts" / "merge_results.py")
merge_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_results)
HEADER = "method,concept,acc_e,acc_s,acc_g,h_o,n_images,remap_e\n"
NOTE = "200 images per prompt. Acc in %, from the scorer's argmax label.\n"


def write_part(prefix, rows, note=NOTE, command="snakemake results --configfile a.yaml"):
    prefix.with_suffix(".csv").write_text(HEADER + "".join(rows))
    prefix.with_suffix(".md").write_text(f"# Erasure results\n\nRegenerate: `{command}`\n\n{note}\n| table |\n")


def refused(*args):
    """The message the script exits with."""
    with pytest.raises(SystemExit) as exc:
        merge_results.main([str(a) for a in args])
    return str(exc.value.code)


def read(path):
    with open(path, newline="") as f:
        return {(r["method"], r["concept"]): r for r in csv.DictReader(f)}


def test_merge_recomputes_averages(tmp_path):
    write_part(tmp_path / "a", ["original,heart,90,80,50,10,100,-\n", "cf,heart,0,80,10,90,100,0.9\n",
                                "cf,average,0,80,10,90,100,0.9\n"])
    write_part(tmp_path / "b", ["original,ring,70,60,30,20,100,-\n", "cf,ring,20,70,30,60,100,0.7\n"],
               command="snakemake results --configfile b.yaml")
    out = tmp_path / "merged"
    merge_results.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)])
    rows = read(out.with_suffix(".csv"))
    assert float(rows[("cf", "average")]["acc_e"]) == pytest.approx(10.0)   # the parts' own averages are dropped
    assert float(rows[("cf", "average")]["remap_e"]) == pytest.approx(0.8)
    assert float(rows[("original", "average")]["acc_g"]) == pytest.approx(40.0)
    assert rows[("original", "average")]["remap_e"] == "-"
    md = out.with_suffix(".md").read_text()
    assert "a.yaml" in md and "b.yaml" in md and "ring Acc_e" in md and NOTE.strip() in md


def test_merge_refuses_overlap_and_mixed_protocols(tmp_path):
    write_part(tmp_path / "a", ["cf,heart,0,80,10,90,100,0.9\n"])
    write_part(tmp_path / "b", ["cf,heart,5,80,10,90,100,0.9\n"])
    write_part(tmp_path / "c", ["cf,ring,5,80,10,90,100,0.9\n"], note="100 images per prompt.\n")
    assert "cf / heart" in refused(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert "different protocols" in refused(tmp_path / "a", tmp_path / "c", "--out", tmp_path / "m")
    assert "nope.csv" in refused(tmp_path / "nope", "--out", tmp_path / "m")
    assert "twice" in refused(tmp_path / "a", tmp_path / "a", "--out", tmp_path / "m")
    assert not (tmp_path / "m.csv").exists()
