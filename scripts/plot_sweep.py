#!/usr/bin/python3
"""Draws the capacity sweep (CSV from scripts/demo.sh) as an SVG: accuracy
against the share of expert assignments processed, BPR against vanilla
routing; with the int8 columns (accuracy_int8, assignments_kept_share_int8)
the int8 module's curves beside the fp32 ones (dashed). Standard library
only.

  plot_sweep.py SWEEP.csv OUT.svg
"""
import csv
import sys


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    rows = list(csv.DictReader(open(sys.argv[1])))
    # (bpr, math) -> points; "" is fp32, "_int8" the int8 columns.
    maths = [""] + (["_int8"] if rows and "accuracy_int8" in rows[0] else [])
    series = {(b, m): [] for m in maths for b in ("on", "off")}
    for r in rows:
        for m in maths:
            series[r["bpr"], m].append(
                (float(r["assignments_kept_share" + m]),
                 float(r["accuracy" + m]), r["capacity_factor"]))
    w, h, left, bottom, top, right = 640, 420, 70, 60, 30, 150
    ys = [p[1] for s in series.values() for p in s]
    y_lo = max(0.0, min(ys) - 0.05)
    y_hi = min(1.0, max(ys) + 0.02)

    def px(x):
        return left + x * (w - left - right)

    def py(y):
        return top + (y_hi - y) / (y_hi - y_lo) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">Accuracy vs. expert '
           'assignments processed (capacity factor sweep)</text>']
    # Axes and grid.
    for i in range(6):
        x = i / 5
        out.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" '
                   f'y2="{h - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{px(x):.1f}" y="{h - bottom + 16}" '
                   f'text-anchor="middle">{int(x * 100)}%</text>')
    for i in range(6):
        y = y_lo + (y_hi - y_lo) * i / 5
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{w - right}" '
                   f'y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" '
                   f'text-anchor="end">{y * 100:.1f}%</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 18}" '
               'text-anchor="middle">share of expert assignments processed</text>')
    out.append(f'<text x="16" y="{(top + h - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + h - bottom) / 2})">test accuracy</text>')
    colors = {"on": "#1f77b4", "off": "#d62728"}
    names = {"on": "BPR", "off": "vanilla"}
    dash = {"": "", "_int8": ' stroke-dasharray="6 4"'}
    label = {"": "", "_int8": " int8"}
    if len(maths) > 1:
        label[""] = " fp32"
    for (bpr, m), pts in series.items():
        pts = sorted(pts)
        if not pts:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
        out.append(f'<polyline points="{path}" fill="none" '
                   f'stroke="{colors[bpr]}" stroke-width="2"{dash[m]}/>')
        for x, y, cf in pts:
            title = f"{names[bpr]}{label[m]}, cf {cf}: {y * 100:.2f}%"
            if m:
                # int8 points: hollow squares over the fp32 circles.
                out.append(f'<rect x="{px(x) - 4:.1f}" y="{py(y) - 4:.1f}" '
                           f'width="8" height="8" fill="white" '
                           f'stroke="{colors[bpr]}"><title>{title}</title>'
                           '</rect>')
            else:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" '
                           f'r="3.5" fill="{colors[bpr]}"><title>{title}'
                           '</title></circle>')
    for i, (bpr, m) in enumerate(series):
        y = top + 20 + 22 * i
        out.append(f'<line x1="{w - right + 15}" y1="{y}" x2="{w - right + 40}" '
                   f'y2="{y}" stroke="{colors[bpr]}" stroke-width="2"'
                   f'{dash[m]}/>')
        out.append(f'<text x="{w - right + 46}" y="{y + 4}">'
                   f'{names[bpr]}{label[m]}</text>')
    out.append("</svg>")
    open(sys.argv[2], "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
