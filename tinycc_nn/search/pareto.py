"""The trade-off a search found: accuracy against ROM, RAM and cycles, as a Pareto front.

A trained trial is on the front when no other is at least as accurate and at most as
large in ROM, RAM and cycles, and strictly better in one of them. Written to OUT as
pareto.md (the front, most accurate first), pareto.json (every trained trial, with
`on_front`, and how many the compiler rejected untrained) and pareto.png (accuracy
against each resource; the front in colour).
"""
from __future__ import annotations

import json
from pathlib import Path

from tinycc_nn.datasets import input_name

AXES = (("rom_used", "ROM"), ("ram_used", "RAM (bytes)"), ("cycles_per_inference", "cycles"))


def trial_rows(study) -> list[dict]:
    """One row per trained (COMPLETE) trial: its figures and architecture."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE":
            continue
        exp = t.user_attrs["experiment"]
        schemes = exp["schemes"] if isinstance(exp["schemes"], str) else "/".join(exp["schemes"])
        rows.append({"trial": t.number, "accuracy": t.value,
                     **{k: t.user_attrs.get(k) for k in ("rom_used", "rom_capacity", "rom_unit",
                                                         "ram_used", "ram_capacity",
                                                         "cycles_per_inference")},
                     "input": input_name(exp["size"], exp.get("crop", 28)),
                     "widths": "-".join(map(str, exp["widths"])), "schemes": schemes,
                     "act_bits": exp["act_bits"], "bias": exp["bias"]})
    return rows


def _cost(row: dict) -> tuple:
    return tuple(row[key] or 0 for key, _ in AXES)  # no cycle count (python target): 0


def mark_front(rows: list[dict]) -> list[dict]:
    """Sets each row's `on_front`; returns the front, most accurate first."""
    for row in rows:
        row["on_front"] = not any(
            other["accuracy"] >= row["accuracy"]
            and all(a <= b for a, b in zip(_cost(other), _cost(row)))
            and (other["accuracy"] > row["accuracy"] or _cost(other) != _cost(row))
            for other in rows)
    return sorted((r for r in rows if r["on_front"]), key=lambda r: (-r["accuracy"], _cost(r)))


FRONT_INTRO = ("The Pareto front (accuracy on the test images against ROM, RAM and cycles), "
               "most accurate first:")


def markdown(front: list[dict], title: str, counts: dict) -> str:
    return "\n".join([f"# {title}", "",
                      f"{counts['trained']} trials trained, {counts['rejected']} rejected by the "
                      f"compiler without training. {FRONT_INTRO}", "", *front_table(front)]) + "\n"


def front_table(front: list[dict]) -> list[str]:
    """The front as Markdown table lines, most accurate first."""
    unit = front[0]["rom_unit"] if front else "words"
    lines = [f"| trial | accuracy | ROM ({unit}) | RAM (bytes) | cycles | input | widths | weights "
             "| act bits | bias |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in front:
        def of(used, cap):
            return f"{r[used]}/{r[cap]}" if r[cap] else f"{r[used]}"
        lines.append(f"| {r['trial']} | {100 * r['accuracy']:.2f}% | {of('rom_used', 'rom_capacity')} "
                     f"| {of('ram_used', 'ram_capacity')} | {r['cycles_per_inference'] or '-'} "
                     f"| {r['input']} | {r['widths']} | {r['schemes']} | {r['act_bits']} "
                     f"| {'yes' if r['bias'] else 'no'} |")
    return lines


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(AXES), figsize=(12, 4), sharey=True)
    for ax, (key, label) in zip(axes, AXES):
        for on_front, style in ((False, dict(color="grey", alpha=0.5)), (True, dict(color="C0"))):
            pts = [(r[key], 100 * r["accuracy"]) for r in rows if r["on_front"] == on_front and r[key]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", label="front" if on_front else "other",
                    **style)
        ax.set_xlabel(label if key != "rom_used" or not rows else f"ROM ({rows[0]['rom_unit']})")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(study, out_dir: Path, title: str) -> list[dict]:
    """pareto.md, pareto.json and pareto.png in out_dir; returns the front."""
    rows = trial_rows(study)
    front = mark_front(rows)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = {"trained": len(rows), "rejected": states.count("PRUNED")}
    (out_dir / "pareto.md").write_text(markdown(front, title, counts))
    (out_dir / "pareto.json").write_text(json.dumps({**counts, "trials": rows}, indent=1) + "\n")
    plot(rows, out_dir / "pareto.png", title)
    return front
