"""scripts/merge_sepme.py: one SepME table from runs that each drew some of the sets (sepme_draw)."""
import csv
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("merge_sepme", ROOT / "scripts" / "merge_sepme.py")
merge_sepme = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_sepme)
HEADER = ("set,k,model,concept,role,acc_e,acc_e_lo,acc_e_hi,acc_g,acc_g_lo,acc_g_hi,acc_s,acc_s_lo,acc_s_hi,"
          "h_o,h_o_lo,h_o_hi,original_acc_e,original_acc_g,n_images\n")
NOTE = "200 images per prompt of the concepts a model erases, 50 per prompt of every other concept, drawn in float32; ..."


def write_part(prefix, rows, note=NOTE):
    Path(f"{prefix}.csv").write_text(HEADER + "".join(rows))
    Path(f"{prefix}.md").write_text(f"# SepME\n\nRegenerate: `snakemake results --configfile {prefix.name}.yaml`\n\n{note}\n")


def row(name, model, concept, acc_e="1.00", h_o="90.00"):
    return (f"{name},2,{model},{concept},erased,{acc_e},0.00,2.00,5.00,1.00,9.00,97.00,95.00,99.00,{h_o},88.00,92.00,"
            f"100.00,60.00,4000\n")


def refused(*args):
    with pytest.raises(SystemExit) as exc:
        merge_sepme.main([str(a) for a in args])
    return str(exc.value.code)


def test_merge_keeps_every_sets_rows_and_both_commands(tmp_path):
    write_part(tmp_path / "k2", [row("k2", "all", "heart"), row("k2", "joint", "heart", h_o="-")])
    write_part(tmp_path / "k4", [row("k4", "all", "heart", acc_e="3.00")])
    out = tmp_path / "merged"
    merge_sepme.main([str(tmp_path / "k2"), str(tmp_path / "k4"), "--out", str(out)])
    with open(f"{out}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["set"], r["model"], r["acc_e"], r["h_o"]) for r in rows] == [
        ("k2", "all", "1.00", "90.00"), ("k2", "joint", "1.00", "-"), ("k4", "all", "3.00", "90.00")]
    md = Path(f"{out}.md").read_text()
    assert "k2.yaml" in md and "k4.yaml" in md and NOTE in md
    assert "| k4 | 2 | all | heart | erased | 3.0 [0.0, 2.0] (100.0) |" in md


def test_merge_refuses_overlaps_and_other_protocols(tmp_path):
    write_part(tmp_path / "a", [row("k2", "all", "heart")])
    write_part(tmp_path / "b", [row("k2", "all", "heart")])
    write_part(tmp_path / "c", [row("k4", "all", "heart")], note=NOTE.replace("float32", "bfloat16"))
    assert "set k2, model all, heart" in refused(tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert "different protocols" in refused(tmp_path / "a", tmp_path / "c", "--out", tmp_path / "m")
    assert "nope.csv" in refused(tmp_path / "nope", "--out", tmp_path / "m")
    assert not (tmp_path / "m.csv").exists()
