"""The trade-off frontier (erasure.frontier): rows read on one held-out half, the CSV and the plot."""
import csv

from PIL import Image

from erasure.frontier import FRONTIER_COLUMNS, frontier_rows, write_frontier
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
        assert len(set(pixels.getdata())) > 3   # axes, text and coloured points, not a blank canvas


def test_a_tuning_sweep_draws_no_report_prompt():
    rows = [{"id": 0, "concept": "heart", "kind": "erase", "split": ""},
            {"id": 1, "concept": "heart", "kind": "associated", "split": "tuning"},
            {"id": 2, "concept": "heart", "kind": "associated", "split": "report"},
            {"id": 3, "concept": "ring", "kind": "associated", "split": "report"}]
    assert [r["id"] for r in select_prompts(rows, "heart", None, True, ["tuning"])] == [0, 1]
    assert [r["id"] for r in select_prompts(rows, "heart", None, False, ["tuning", "report"])] == [0, 1, 2]
