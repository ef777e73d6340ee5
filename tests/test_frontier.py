"""The trade-off frontier (erasure.frontier): rows read on one held-out half, the CSV and the plot."""
import csv

from PIL import Image

from conftest import ROOT
from erasure.frontier import (FRONTIER_COLUMNS, choice_markdown, choose, claim_markdown, frontier_rows, verdicts,
                              write_frontier)
from erasure.generation import select_prompts


def average(method, g_tuning, g_report, s=90.0, sg=80.0):
    row = {"method": method, "concept": "average", "acc_e": 1.0, "acc_s": s, "h_o": 90.0,
           "acc_g_tuning": g_tuning, "acc_g_report": g_report, "acc_sg_tuning": sg, "acc_sg_report": sg - 5}
    for key in list(row):
        if key.startswith(("acc", "h_o")):
            row[f"{key}_lo"], row[f"{key}_hi"] = row[key] - 2, row[key] + 2
    return row


def test_frontier_reads_one_half_keeps_sweep_order_and_adds_single_points(tmp_path):
    rows = [average("original", 80, 70), average("w1", 30, 35), average("w0", 5, 6, s=80), average("cf", 33, 31),
            {**average("w0", 0, 0), "concept": "heart"}]
    out = frontier_rows(rows, {"reg weight": ["w0", "w1"]}, "tuning")
    assert [(r["curve"], r["method"]) for r in out] == [("reg weight", "w0"), ("reg weight", "w1"), ("point", "cf")]
    assert out[0]["acc_g"] == 5 and out[0]["acc_sg"] == 80.0 and out[0]["acc_g_hi"] == 7
    assert frontier_rows(rows, {"reg weight": ["w0", "w1"]}, "report")[0]["acc_g"] == 6

    write_frontier(out, tmp_path / "f.csv", tmp_path / "f.png", "tuning")
    with open(tmp_path / "f.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == FRONTIER_COLUMNS and [r["method"] for r in table] == ["w0", "w1", "cf"]
    with Image.open(tmp_path / "f.png") as im:
        pixels = im.convert("RGB")
        assert im.width > 2 * im.height > 0
        assert len(set(pixels.get_flattened_data())) > 3   # axes, text and coloured points, not a blank canvas


def point(method, g, s, sg):
    return {"method": method, "acc_g": g, "acc_s": s, "acc_sg": sg}


def test_the_choice_holds_each_candidate_to_the_bar_against_the_reference():
    ref = point("cf", 40.0, 90.0, 80.0)
    rows = [point("w0", 5.0, 80.0, 60.0),       # far below on Acc_s and Acc_sg: fails
            point("w01", 20.0, 87.0, 75.0),     # exactly at every edge of the bar: qualifies
            point("w03", 20.1, 90.0, 80.0),     # Acc_g just over half: fails
            point("w1", 15.0, 86.9, 80.0),      # Acc_s 3.1 below: fails
            point("uce", 10.0, 90.0, 80.0),     # qualifies, but a baseline is not a default
            ref]
    found = {v["method"]: v for v in verdicts(rows, "cf")}
    assert "cf" not in found
    assert {m for m, v in found.items() if v["qualifies"]} == {"w01", "uce"}
    assert found["w01"]["g_ratio"] == 0.5 and found["w01"]["d_s"] == -3.0 and found["w01"]["d_sg"] == -5.0
    own = {"w0", "w01", "w03", "w1"}
    assert choose(rows, "cf", own) == "w01"
    assert choose(rows, "cf", own | {"uce"}) == "uce"               # the lowest Acc_g of those that qualify
    tie = rows + [point("w02", 20.0, 88.0, 79.0)]
    assert choose(tie, "cf", own | {"w02"}) == "w02"                # equal Acc_g: the higher Acc_sg
    assert choose(rows, "cf", {"w0", "w03", "w1"}) is None
    assert choose(rows, "esd_u", own) is None and choice_markdown(rows, "esd_u", own, "tuning") == ""
    text = choice_markdown(rows, "cf", own, "tuning")
    assert "**Chosen: `w01`.**" in text and "| uce | no | 0.25 | +0.0 | +0.0 | yes |" in text
    assert "No method of this project's own qualifies" in choice_markdown(rows, "cf", {"w1"}, "tuning")


def test_the_claim_also_needs_the_two_acc_g_intervals_apart():
    """On the report half the bar of the choice holds and, besides, the method's Acc_g interval ends below the
    reference's: 16 [10, 21] against 40 [20, 60] meets the bar but the intervals touch, 16 [10, 19] holds."""
    def interval(row, lo, hi):
        return {**row, "acc_g_lo": lo, "acc_g_hi": hi}
    ref = interval(point("cf", 40.0, 90.0, 80.0), 20.0, 60.0)
    rows = [ref, interval(point("close", 16.0, 88.0, 76.0), 10.0, 21.0),
            interval(point("apart", 16.0, 88.0, 76.0), 10.0, 19.0),
            interval(point("costly", 10.0, 80.0, 76.0), 5.0, 15.0)]
    text = claim_markdown(rows, "cf", "report")
    assert "| close | 0.40 | -2.0 | -4.0 | no | no |" in text
    assert "| apart | 0.40 | -2.0 | -4.0 | yes | **yes** |" in text
    assert "| costly | 0.25 | -10.0 | -4.0 | yes | no |" in text
    assert "On the report half, against `cf` (Acc_g 40.0 [20.0, 60.0])" in text
    assert claim_markdown(rows, "esd_u", "report") == ""


def test_a_tuning_sweep_draws_no_report_prompt():
    rows = [{"id": 0, "concept": "heart", "kind": "erase", "split": ""},
            {"id": 1, "concept": "heart", "kind": "associated", "split": "tuning"},
            {"id": 2, "concept": "heart", "kind": "associated", "split": "report"},
            {"id": 3, "concept": "ring", "kind": "associated", "split": "report"}]
    assert [r["id"] for r in select_prompts(rows, "heart", None, True, ["tuning"])] == [0, 1]
    assert [r["id"] for r in select_prompts(rows, "heart", None, False, ["tuning", "report"])] == [0, 1, 2]


def test_results_copies_the_frontier_plot_with_the_tables(tmp_path):
    """`snakemake results` on a run with report.frontier: the tables under results/ with the command
    that regenerates them, and the frontier plot and the per-prompt counts beside them (stages/results_table.py)."""
    import subprocess
    import sys
    (tmp_path / "summary.csv").write_text("method,concept\ncf,heart\n")
    (tmp_path / "table.md").write_text("# Erasure results\n\nrows\n")
    (tmp_path / "frontier.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "results" / "frontier"
    base = [sys.executable, str(ROOT / "stages/results_table.py"), "--csv", str(tmp_path / "summary.csv"),
            "--md", str(tmp_path / "table.md"), "--command", "snakemake results", "--out-csv", f"{out}.csv",
            "--out-md", f"{out}.md"]
    (tmp_path / "per_prompt.csv").write_text("method,erased,id\ncf,heart,0\n")
    subprocess.run(base + ["--png", str(tmp_path / "frontier.png"), "--out-png", f"{out}.png", "--per-prompt",
                           str(tmp_path / "per_prompt.csv"), "--out-per-prompt", f"{out}_per_prompt.csv"], check=True)
    assert (tmp_path / "results/frontier.png").read_bytes() == b"\x89PNG not really"
    assert (tmp_path / "results/frontier_per_prompt.csv").read_text() == "method,erased,id\ncf,heart,0\n"
    assert "Regenerate: `snakemake results`" in (tmp_path / "results/frontier.md").read_text()
    bad = subprocess.run(base + ["--png", str(tmp_path / "frontier.png")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--png and --out-png go together" in bad.stderr
