"""The search's answer: the most accurate trained model, compiled and verified bit-exact.

Writes OUT/model.onnx (taken from the study, so any machine of a shared search can write
it), OUT/TARGET/ (what `tinycc-nn compile` writes), and winner.json / winner.md: the trial,
its Experiment, the figures, and the verification (the compiled program on the target's
executor against onnxruntime on the first test images, every output bit for bit).
"""
from __future__ import annotations

import json
from pathlib import Path

import tinycc_nn
from tinycc_nn.datasets import input_name, mnist
from tinycc_nn.search.objective import decode_model


def best_trial(study):
    """The most accurate trained trial (the smaller ROM, then RAM, on a tie), or None."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not done:
        return None
    return max(done, key=lambda t: (t.value, -(t.user_attrs.get("rom_used") or 0),
                                    -(t.user_attrs.get("ram_used") or 0), -t.number))


def write_winner(study, out_dir: Path, target: str, options: dict, verify_images: int | None,
                 progress=None) -> dict | None:
    """Write the winner (verified unless verify_images is 0); its summary, or None."""
    from tinycc_nn.verify import verify_artifact

    trial = best_trial(study)
    if trial is None:
        return None
    exp = trial.user_attrs["experiment"]
    path = out_dir / "model.onnx"
    path.write_bytes(decode_model(trial.user_attrs["model_onnx"]))
    art = tinycc_nn.compile(str(path), target, **options)
    art.write(out_dir / target)
    summary = {"trial": trial.number, "accuracy": trial.value, "target": target, "options": options,
               **{k: art.report.get(k) for k in ("rom_used", "rom_capacity", "rom_unit", "ram_used",
                                                 "ram_capacity", "cycles_per_inference")},
               "experiment": exp, "verify": None}
    if verify_images != 0:
        x = mnist(exp["size"], "test", exp.get("crop", 28))[0][:verify_images]
        res = verify_artifact(art, path, x, progress=progress)
        summary["verify"] = {"n": res.n, "mismatches": res.mismatches,
                             "argmax_agree": res.argmax_agree, "first_mismatch": res.first_mismatch}
    (out_dir / "winner.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out_dir / "winner.md").write_text(_markdown(summary))
    return summary


def _markdown(s: dict) -> str:
    exp = s["experiment"]
    v = s["verify"]
    checked = ("not verified (the search was interrupted; run it again to finish)" if v is None else
               f"verified on {v['n']} test images: {v['mismatches']} mismatches against onnxruntime "
               f"(every output, bit for bit)")
    cap = f"/{s['rom_capacity']}" if s["rom_capacity"] else ""
    ram_cap = f"/{s['ram_capacity']}" if s["ram_capacity"] else ""
    cycles = f", {s['cycles_per_inference']} cycles per inference" if s["cycles_per_inference"] else ""
    return "\n".join([
        f"# Search winner for {s['target']}", "",
        f"Trial {s['trial']}: {100 * s['accuracy']:.2f}% on the test images, "
        f"ROM {s['rom_used']}{cap} {s['rom_unit']}, RAM {s['ram_used']}{ram_cap} bytes{cycles}.", "",
        f"Network {'-'.join(map(str, exp['widths']))} on {input_name(exp['size'], exp.get('crop', 28))} inputs, "
        f"weights {exp['schemes'] if isinstance(exp['schemes'], str) else '/'.join(exp['schemes'])}, activations {exp['act_bits']} bits, "
        f"bias {'yes' if exp['bias'] else 'no'}.", "",
        f"`model.onnx` compiled to `{s['target']}/`, {checked}.", "",
        "The experiment (`tinycc_nn.qat.experiment.Experiment`), to train it again:", "",
        "```json", json.dumps(exp, indent=1), "```", ""])
