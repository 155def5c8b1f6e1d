"""PNG charts of the benchmarks' results, written beside their tables into ``benchmarks/charts/``.

A benchmark script calls one of the functions below with what it measured; each writes
``<name>.png`` and the figures it drew as ``<name>.json`` next to it, so that a chart can be
checked against (or redrawn from) its numbers. Three kinds, for the questions a user asks:

- ``lines``: one panel per case, one line per server, e.g. req/s against clients or p99 against
  clients (``networks.py``); a reference (the framework's own in-process limit) as a dashed line.
- ``bars``: one bar per label, e.g. the first LoadModel per framework or memory per model
  (``coldstart.py``, ``density.py``), with targets drawn across.

matplotlib draws with its file-only backend (Agg): no display is needed.
"""

import json
from pathlib import Path

CHARTS = Path(__file__).resolve().parent / "charts"
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, name: str, data: dict, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.png"
    figure.savefig(target, dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    (directory / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    return target


def _short(value: float) -> str:
    if not value:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def lines(name: str, title: str, panels: dict[str, dict[str, list[tuple[float, float]]]], xlabel: str, ylabel: str,
          references: dict[str, dict[str, float]] | None = None, log_y: bool = False, note: str = "",
          directory: Path = CHARTS) -> Path:
    """``panels``: panel title -> series label -> [(x, y)]; ``references``: panel -> label -> y
    drawn as a grey dashed horizontal line. The x axis is log 2 (clients: 1, 8, 32); a series
    keeps its colour across panels and across charts drawn with the same labels."""
    plt = _pyplot()
    count = len(panels)
    columns = min(3, count)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False)
    labels = sorted({label for series in panels.values() for label in series})
    colour = {label: COLOURS[index % len(COLOURS)] for index, label in enumerate(labels)}  # the same in every panel
    dashes = {label: style for label, style in zip(sorted({label for refs in (references or {}).values() for label in refs}),
                                                   ("--", ":", "-.", (0, (5, 1, 1, 1))))}
    for axis, (panel, series) in zip(axes.flat, panels.items()):
        for label, points in series.items():
            points = sorted(points)
            axis.plot([x for x, _ in points], [y for _, y in points], marker="o", label=label, color=colour[label])
        for label, value in (references or {}).get(panel, {}).items():
            axis.axhline(value, linestyle=dashes.get(label, "--"), linewidth=1.2, color="#444444", label=label)
        axis.set_title(panel, fontsize=10)
        axis.set_xscale("log", base=2)
        xs = sorted({x for points in series.values() for x, _ in points})
        axis.set_xticks(xs, [f"{x:g}" for x in xs])
        if log_y:
            axis.set_yscale("log")
        else:
            axis.set_ylim(bottom=0)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    figure.suptitle(title + (f"\n{note}" if note else ""), fontsize=11)
    figure.tight_layout()
    return _save(figure, name, {"title": title, "note": note, "xlabel": xlabel, "ylabel": ylabel, "panels": panels,
                                "references": references or {}}, directory)


def bars(name: str, title: str, groups: dict[str, dict[str, float]], ylabel: str, targets: dict[str, float] | None = None,
         log_y: bool = False, note: str = "", directory: Path = CHARTS) -> Path:
    """``groups``: x label -> series label -> value (bars side by side per x label); ``targets``:
    label -> value, each a dashed line across."""
    plt = _pyplot()
    series = list(dict.fromkeys(label for values in groups.values() for label in values))
    width = 0.8 / max(1, len(series))
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(series)) ** 0.5 + 2), 3.8))
    for index, label in enumerate(series):
        xs = [position + (index - (len(series) - 1) / 2) * width for position in range(len(groups))]
        values = [groups[group].get(label, 0.0) for group in groups]
        drawn = axis.bar(xs, values, width, label=label, color=COLOURS[index % len(COLOURS)])
        axis.bar_label(drawn, labels=[_short(value) for value in values], fontsize=7)
    axis.set_xticks(range(len(groups)), list(groups), fontsize=9)
    for (label, value), style in zip((targets or {}).items(), ("--", ":", "-.")):
        axis.axhline(value, linestyle=style, color="black", linewidth=1, label=label)
    if log_y:
        axis.set_yscale("log")
    axis.set_ylabel(ylabel)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set_title(title + (f"\n{note}" if note else ""), fontsize=10)
    figure.tight_layout()
    return _save(figure, name, {"title": title, "note": note, "ylabel": ylabel, "groups": groups, "targets": targets or {}},
                 directory)
