#!/usr/bin/env python3
"""Reads criterion's medians (target/criterion/<class>/<impl>/<n>/new/estimates.json)
and prints the table of docs/performance.md: per class, the median of each
implementation and backdex's speed-up over SQLite and over the oracle."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
classes = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "L1", "L2", "L3", "L4", "L5", "L6", "S1"]


def median(cls, impl):
    found = sorted(root.glob(f"{cls}/{impl}/*/new/estimates.json"))
    if not found:
        return None
    return json.loads(found[-1].read_text())["median"]["point_estimate"]


def show(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


print("| class | backdex | SQLite | oracle | SQLite / backdex | oracle / backdex |")
print("|---|---:|---:|---:|---:|---:|")
for cls in classes:
    b, s, o = (median(cls, i) for i in ("backdex", "sqlite", "oracle"))
    ratio = lambda x: f"{x / b:.1f}×" if x and b else "-"
    print(f"| {cls} | {show(b)} | {show(s)} | {show(o)} | {ratio(s)} | {ratio(o)} |")
