"""Trade-off frontiers: each method's average Acc_g against its Acc_s and against its Acc_sg, with 95%
intervals as error bars, the points of one swept family joined in sweep order (config report.frontier).

Drawn with PIL (the grids' library) so the report needs no plotting package.
"""
from pathlib import Path

from PIL import Image, ImageDraw

from . import io

FRONTIER_COLUMNS = ["curve", "method", "acc_g", "acc_g_lo", "acc_g_hi", "acc_s", "acc_s_lo", "acc_s_hi",
                    "acc_sg", "acc_sg_lo", "acc_sg_hi", "acc_e", "acc_e_lo", "acc_e_hi", "h_o", "h_o_lo", "h_o_hi"]
PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
           (140, 86, 75), (227, 119, 194)]
SIZE, MARGIN = 420, 56


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


def _axes(draw, x_label, y_label, origin, scale):
    x0, y0 = origin
    draw.rectangle([x0, y0 - 100 * scale, x0 + 100 * scale, y0], outline="black")
    for v in range(0, 101, 20):
        draw.line([x0 + v * scale, y0, x0 + v * scale, y0 + 4], fill="black")
        draw.text((x0 + v * scale - 8, y0 + 6), str(v), fill="black")
        draw.line([x0 - 4, y0 - v * scale, x0, y0 - v * scale], fill="black")
        draw.text((x0 - 26, y0 - v * scale - 6), str(v), fill="black")
    draw.text((x0 + 30 * scale, y0 + 22), x_label, fill="black")
    draw.text((4, y0 - 100 * scale - 18), y_label, fill="black")


def _panel(rows, x_key, y_key, title):
    """One scatter: x = rows[x_key], y = rows[y_key] (percent), error bars from the _lo/_hi columns."""
    im = Image.new("RGB", (SIZE + MARGIN + 160, SIZE + 2 * MARGIN), "white")
    draw = ImageDraw.Draw(im)
    scale, origin = SIZE / 100, (MARGIN, SIZE + MARGIN)

    def xy(x, y):
        return origin[0] + x * scale, origin[1] - y * scale

    _axes(draw, x_key, y_key, origin, scale)
    draw.text((MARGIN, 6), title, fill="black")
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    for i, curve in enumerate(curves):
        colour = PALETTE[i % len(PALETTE)]
        members = [r for r in rows if r["curve"] == curve]
        if curve != "point" and len(members) > 1:
            draw.line([xy(r[x_key], r[y_key]) for r in members], fill=colour, width=1)
        for r in members:
            x, y = xy(r[x_key], r[y_key])
            draw.line([xy(r[f"{x_key}_lo"], r[y_key]), xy(r[f"{x_key}_hi"], r[y_key])], fill=colour)
            draw.line([xy(r[x_key], r[f"{y_key}_lo"]), xy(r[x_key], r[f"{y_key}_hi"])], fill=colour)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            if curve == "point" or r is members[0] or r is members[-1]:
                draw.text((x + 5, y - 12), r["method"][:18], fill=colour)
        draw.text((SIZE + MARGIN + 12, MARGIN + 14 * i), curve, fill=colour)
    return im


def write_frontier(rows: list[dict], out_csv: str | Path, out_png: str | Path, split: str) -> None:
    """frontier.csv (FRONTIER_COLUMNS) and frontier.png: Acc_g against Acc_s and against Acc_sg, on the
    held-out half `split` (the Acc_g and Acc_sg columns are that half's)."""
    def cell(row, key):
        return "" if row.get(key) is None else f"{row[key]:.4f}" if isinstance(row[key], float) else row[key]

    io.write_csv(out_csv, FRONTIER_COLUMNS, [[cell(r, c) for c in FRONTIER_COLUMNS] for r in rows])
    plotted = [r for r in rows if all(r.get(k) == r.get(k) for k in ("acc_g", "acc_s", "acc_sg"))]  # no NaN
    left = _panel(plotted, "acc_s", "acc_g", f"Acc_g ({split} half) against Acc_s; lower right is better")
    right = _panel(plotted, "acc_sg", "acc_g", f"Acc_g against Acc_sg ({split} half); lower right is better")
    canvas = Image.new("RGB", (left.width + right.width, left.height), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    io.save_image(canvas, out_png)
