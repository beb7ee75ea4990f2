"""The best model a search found for a part, as a committed report.

    python benchmarks/search.py -t pfs154 -o /tmp/search_pfs154 -- --timeout 2400 --seed 0
    python benchmarks/search.py -t pms150c -o DIR --report-only --command "tinycc-nn search ..."

Runs `tinycc-nn search -t TARGET -o DIR ARGS...` (everything after `--` goes to the search
as it is), then writes benchmarks/results/search_TARGET.md from the study in DIR: the
command, how long the trials took (from the study's own timestamps), the winner as the
search verified it (DIR/winner.md), the Pareto front (DIR/pareto.md) and every trained
trial with its recipe. `--report-only` writes the report of a search that already ran,
with the command given by `--command`.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from tinycc_nn.search import study as studies
from tinycc_nn.search.pareto import trial_rows

ROOT = Path(__file__).resolve().parents[1]


def load(out_dir: Path, target: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store = studies.storage_for(None, out_dir)
    return optuna.load_study(study_name=studies.default_name(target), storage=store)


def recipe(exp: dict) -> str:
    parts = [f"{exp['float_epochs']}+{exp['qat_epochs']} epochs", f"lr {exp['lr']:.2g}/{exp['qat_lr']:.2g}"]
    if exp.get("distill"):
        parts.append("distilled")
    if exp.get("muon"):
        parts.append("Muon")
    if exp.get("augment"):
        parts.append(exp["augment"]["kind"])
    if exp.get("refine_passes"):
        parts.append(f"{exp['refine_passes']} refinement sweeps")
    return ", ".join(parts)


def report(out_dir: Path, target: str, command: str) -> str:
    study = load(out_dir, target)
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds()
               for t in trials if t.datetime_start and t.datetime_complete)
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0
    rows = {r["trial"]: r for r in trial_rows(study)}
    rejected = sum(t.state.name == "PRUNED" for t in trials)
    lines = [f"# Search for the {target.upper()}", "",
             f"Command: `{command}`", "",
             f"{len(rows)} trials trained and {rejected} rejected by the compiler without training, "
             f"in {wall / 60:.0f} minutes from the first trial's start to the last one's end "
             f"({busy / 60:.0f} minutes inside trials), on a 2-core machine shared with other jobs. "
             "Accuracy is onnxruntime's on the MNIST test images (all 10,000 unless the command "
             "says --test-limit).", ""]
    winner = out_dir / "winner.md"
    if winner.exists():
        body = winner.read_text().split("\n", 1)[1]
        lines += ["## The winner", body.split("The experiment (")[0].strip(), ""]
    pareto = out_dir / "pareto.md"
    if pareto.exists():
        body = pareto.read_text().split("\n", 1)[1].strip()
        lines += ["## Pareto front", body, ""]
    lines += ["## Every trained trial, most accurate first", "",
              "| trial | accuracy | ROM | RAM (bytes) | cycles | input | widths | weights | recipe |",
              "|---|---|---|---|---|---|---|---|---|"]
    by_number = {t.number: t for t in trials}
    for r in sorted(rows.values(), key=lambda r: -r["accuracy"]):
        exp = by_number[r["trial"]].user_attrs["experiment"]
        lines.append(f"| {r['trial']} | {100 * r['accuracy']:.2f}% | {r['rom_used']} {r['rom_unit']} | "
                     f"{r['ram_used']} | {r['cycles_per_inference'] or '-'} | {r['input']} | "
                     f"{r['widths']} | {r['schemes']} | {recipe(exp)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--target", required=True)
    ap.add_argument("-o", "--output", type=Path, required=True, help="the search's folder")
    ap.add_argument("--report-only", action="store_true", help="report a search that already ran")
    ap.add_argument("--command", help="with --report-only: the command that ran it")
    args = ap.parse_args(own)
    command = args.command or shlex.join(["tinycc-nn", "search", "-t", args.target,
                                          "-o", str(args.output), *extra])
    if not args.report_only:
        cli = [str(Path(sys.executable).parent / "tinycc-nn"), "search", "-t", args.target,
               "-o", str(args.output), *extra]
        subprocess.run(cli, check=True)
    out = ROOT / "benchmarks" / "results" / f"search_{args.target}.md"
    out.write_text(report(args.output, args.target, command))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
