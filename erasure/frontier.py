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


# The bar of issue 19, point 3, against the closed form alone (docs/protocol.md, "Choosing a setting"):
# Acc_g at most this fraction of the reference's, Acc_s and Acc_sg at most these many points below it.
REFERENCE = "cf"
BAR_G, BAR_S, BAR_SG = 0.5, 3.0, 5.0


def verdicts(rows: list[dict], reference: str) -> list[dict]:
    """Each frontier row other than the reference's against the bar: its margins (Acc_g over the reference's,
    Acc_s and Acc_sg minus the reference's) and whether it qualifies. Empty without a reference row."""
    ref = next((r for r in rows if r["method"] == reference), None)
    if ref is None:
        return []
    out = []
    for r in rows:
        if r["method"] == reference:
            continue
        g_ratio = r["acc_g"] / ref["acc_g"] if ref["acc_g"] > 0 else float("inf")
        d_s, d_sg = r["acc_s"] - ref["acc_s"], r["acc_sg"] - ref["acc_sg"]
        out.append({"method": r["method"], "acc_g": r["acc_g"], "acc_s": r["acc_s"], "acc_sg": r["acc_sg"],
                    "g_ratio": g_ratio, "d_s": d_s, "d_sg": d_sg,
                    "qualifies": g_ratio <= BAR_G and d_s >= -BAR_S and d_sg >= -BAR_SG})
    return out


def choose(rows: list[dict], reference: str, own: set[str]) -> str | None:
    """The rule's choice: of this project's own methods (`own`) that qualify, the lowest Acc_g (a tie: the
    higher Acc_sg); None when none qualifies."""
    fit = [v for v in verdicts(rows, reference) if v["qualifies"] and v["method"] in own]
    return min(fit, key=lambda v: (v["acc_g"], -v["acc_sg"]))["method"] if fit else None


def choice_markdown(rows: list[dict], reference: str, own: set[str], split: str) -> str:
    """The choice section of a frontier run's table: every candidate against the bar, then the choice."""
    found = verdicts(rows, reference)
    if not found:
        return ""
    head = (f"\n## Choice (docs/protocol.md, \"Choosing a setting\")\n\nOn the {split} half, against `{reference}`: "
            f"a candidate qualifies with Acc_g at most {BAR_G:g} of the reference's, Acc_s at most {BAR_S:g} and "
            f"Acc_sg at most {BAR_SG:g} points below it; the choice is the qualifying method of this project's own "
            "with the lowest Acc_g.\n\n| method | own | Acc_g / reference | Acc_s difference | Acc_sg difference "
            "| qualifies |\n|---|---|---|---|---|---|\n")
    lines = [f"| {v['method']} | {'yes' if v['method'] in own else 'no'} | {v['g_ratio']:.2f} | {v['d_s']:+.1f} "
             f"| {v['d_sg']:+.1f} | {'yes' if v['qualifies'] else 'no'} |" for v in found]
    pick = choose(rows, reference, own)
    tail = (f"\n\n**Chosen: `{pick}`.**\n" if pick else
            "\n\n**No method of this project's own qualifies**; the default stays the paper's `realera`.\n")
    return head + "\n".join(lines) + tail


def claim_markdown(rows: list[dict], reference: str, split: str) -> str:
    """Issue 19's point 3 judged on a half no choice has seen (docs/protocol.md, rule 5): each method against
    the reference with the bar of `verdicts`, and the two Acc_g intervals apart (the method's upper end below
    the reference's lower end)."""
    found = verdicts(rows, reference)
    if not found:
        return ""
    ref = next(r for r in rows if r["method"] == reference)
    by_method = {r["method"]: r for r in rows}
    head = (f"\n## The claim (docs/protocol.md, \"Choosing a setting\", rule 5)\n\nOn the {split} half, against "
            f"`{reference}` (Acc_g {ref['acc_g']:.1f} [{ref['acc_g_lo']:.1f}, {ref['acc_g_hi']:.1f}]): the claim holds "
            f"for a method with Acc_g at most {BAR_G:g} of the reference's, Acc_s at most {BAR_S:g} and Acc_sg at "
            f"most {BAR_SG:g} points below it, and the two Acc_g intervals apart.\n\n| method | Acc_g / reference | "
            "Acc_s difference | Acc_sg difference | Acc_g intervals apart | holds |\n|---|---|---|---|---|---|\n")
    lines = []
    for v in found:
        apart = by_method[v["method"]]["acc_g_hi"] < ref["acc_g_lo"]
        lines.append(f"| {v['method']} | {v['g_ratio']:.2f} | {v['d_s']:+.1f} | {v['d_sg']:+.1f} | "
                     f"{'yes' if apart else 'no'} | {'**yes**' if v['qualifies'] and apart else 'no'} |")
    return head + "\n".join(lines) + "\n"
