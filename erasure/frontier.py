"""Trade-off frontiers: each method's average Acc_g against its Acc_s and against its Acc_sg, with 95%
intervals as error bars, the points of one swept family joined in sweep order (config report.frontier).
"""
from pathlib import Path

from . import io, plots

FRONTIER_COLUMNS = ["curve", "method", "acc_g", "acc_g_lo", "acc_g_hi", "acc_s", "acc_s_lo", "acc_s_hi",
                    "acc_sg", "acc_sg_lo", "acc_sg_hi", "acc_e", "acc_e_lo", "acc_e_hi", "h_o", "h_o_lo", "h_o_hi"]


def frontier_rows(average_rows: list[dict], curves: dict[str, list[str]], split: str) -> list[dict]:
    """One row per method with an average row: its curve (the family it was swept in, else "point"),
    Acc_e, Acc_s and H_o, and Acc_g and Acc_sg on the held-out half `split` (as acc_g, acc_sg); curve
    members in sweep order, then the single points."""
    def row(curve, r):
        out = {"curve": curve, "method": r["method"]}
        for key in ("acc_e", "acc_s", "h_o", "acc_g", "acc_sg"):
            source = f"{key}_{split}" if key in ("acc_g", "acc_sg") else key
            for end in ("", "_lo", "_hi"):
                out[key + end] = r.get(source + end, float("nan"))
        return out

    by_method = {r["method"]: r for r in average_rows if r["concept"] == "average"}
    out = []
    for curve, members in curves.items():
        out += [row(curve, by_method[m]) for m in members if m in by_method]
    swept = {m for members in curves.values() for m in members}
    out += [row("point", r) for m, r in by_method.items() if m not in swept and m != "original"]
    return out


def write_frontier(rows: list[dict], out_csv: str | Path, out_png: str | Path, split: str) -> None:
    """frontier.csv (FRONTIER_COLUMNS) and frontier.png: Acc_g against Acc_s and against Acc_sg, on the
    held-out half `split` (the Acc_g and Acc_sg columns are that half's)."""
    def cell(row, key):
        return "" if row.get(key) is None else f"{row[key]:.4f}" if isinstance(row[key], float) else row[key]

    io.write_csv(out_csv, FRONTIER_COLUMNS, [[cell(r, c) for c in FRONTIER_COLUMNS] for r in rows])
    plots.frontier(rows, out_png, split)
