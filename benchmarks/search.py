"""The best model a search found for a part, as a committed report.

    python benchmarks/search.py -t pfs154 -o /tmp/search_pfs154 -- --timeout 2400 --seed 0
    python benchmarks/search.py -t pms150c -o DIR --report-only --command "tinycc-nn search ..."
    python benchmarks/search.py -t pms150c -o DIR --report-only --command "..." --example pms150c_best

Runs `tinycc-nn search -t TARGET -o DIR ARGS...` (everything after `--` goes to the search
as it is), then writes benchmarks/results/search_TARGET.md from the study in DIR: the
command, how long the trials took (from the study's own timestamps), the winner as the
search verified it (DIR/winner.md), the Pareto front (DIR/pareto.md) and every trained
trial with its recipe. `--report-only` writes the report of a search that already ran,
with the command given by `--command`. `--example NAME` also makes the winner an example:
examples/NAME/model.onnx, the trial's model.pt and results.json (torch's model and the
training log, which benchmarks/accuracy.py reads) and a README.md with its figures and the
command that found it.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tinycc_nn.search import study as studies
from tinycc_nn.search.pareto import FRONT_INTRO, front_table, mark_front, trial_rows

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
    if rows:  # the counts are said above, so the front without pareto.md's own header
        lines += ["## Pareto front", FRONT_INTRO, "", *front_table(mark_front(list(rows.values()))), ""]
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


def example_readme(out_dir: Path, target: str, command: str, win: dict) -> str:
    """README.md of examples/NAME: the verified winner (winner.json), its figures, how it was found."""
    exp, v = win["experiment"], win["verify"]
    trial = load(out_dir, target).trials[win["trial"]]
    fp32 = trial.user_attrs.get("fp32_accuracy")
    schemes = exp["schemes"] if isinstance(exp["schemes"], str) else "/".join(exp["schemes"])
    compile_cmd = " ".join([f"tinycc-nn compile model.onnx -t {target}",
                            *(f"--{k} {v}" for k, v in win["options"].items())])
    crop = exp.get("crop", 28)
    view = (f"the 28x28 digit box-averaged to {exp['size']}x{exp['size']}" if crop == 28 else
            f"the centred {crop}x{crop} pixels of the 28x28 digit box-averaged to {exp['size']}x{exp['size']}")
    images = f"the first {exp['test_limit']:,}" if exp.get("test_limit") else "the 10,000"
    return "\n".join([
        f"# Found by the search for the {target.upper()}", "",
        f"The most accurate model `tinycc-nn search -t {target}` found: network "
        f"{'-'.join(map(str, exp['widths']))}, weights {schemes}, bias {'yes' if exp['bias'] else 'no'}, "
        f"uint8 inputs and hidden activations, int8 logits. Its input is {view} "
        f"(`tinycc_nn.datasets.mnist({exp['size']}, split, crop={crop})`; the model's ONNX "
        f"metadata `tinycc_nn.input` says so).", "",
        "| | |", "|---|---|",
        f"| onnxruntime on {images} MNIST test images | {100 * win['accuracy']:.2f}% |",
        *([f"| its fp32 twin (same widths, unquantized) | {100 * fp32:.2f}% |"] if fp32 else []),
        f"| ROM (`{compile_cmd}`) | {win['rom_used']} of "
        f"{win['rom_capacity']} {win['rom_unit']} |",
        f"| RAM | {win['ram_used']} of {win['ram_capacity']} bytes |",
        f"| cycles per inference (the compiler's count) | {win['cycles_per_inference']:,} |",
        f"| the compiled program on the simulator against onnxruntime, every output bit for bit | "
        f"{v['n'] - v['mismatches']} of {v['n']} images agree |", "",
        "Found by (the seed fixes the proposals and every training):", "",
        "```", command, "```", "",
        f"`benchmarks/results/search_{target}.md` has every trial of that search; `model.pt` "
        f"and `results.json` are the trial's torch model and training log. "
        f"To train this model again without searching, run `tinycc_nn.qat.experiment.run("
        f"Experiment(**experiment), out_dir)` with:", "",
        "```json", json.dumps(exp, indent=1), "```", ""])


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--target", required=True)
    ap.add_argument("-o", "--output", type=Path, required=True, help="the search's folder")
    ap.add_argument("--report-only", action="store_true", help="report a search that already ran")
    ap.add_argument("--command", help="with --report-only: the command that ran it")
    ap.add_argument("--example", metavar="NAME", help="make the winner examples/NAME")
    args = ap.parse_args(own)
    command = args.command or shlex.join(["tinycc-nn", "search", "-t", args.target,
                                          "-o", "DIR", *extra])  # the folder is this machine's
    if not args.report_only:
        cli = [str(Path(sys.executable).parent / "tinycc-nn"), "search", "-t", args.target,
               "-o", str(args.output), *extra]
        subprocess.run(cli, check=True)
    out = ROOT / "benchmarks" / "results" / f"search_{args.target}.md"
    out.write_text(report(args.output, args.target, command))
    print(f"wrote {out}")
    if args.example:
        folder = ROOT / "examples" / args.example
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.output / "model.onnx", folder / "model.onnx")
        win = json.loads((args.output / "winner.json").read_text())
        # the trial's torch model and training log: benchmarks/accuracy.py reads both
        trial = args.output / "trials" / f"{win['trial']:04d}"
        kept = [name for name in ("model.pt", "results.json") if (trial / name).exists()]
        for name in kept:
            shutil.copyfile(trial / name, folder / name)
        (folder / "README.md").write_text(example_readme(args.output, args.target, command, win))
        print(f"wrote {folder}/" + ", ".join(["model.onnx", *kept, "README.md"]))


if __name__ == "__main__":
    main()
