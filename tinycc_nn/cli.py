"""The `tinycc-nn` command line.

Exit codes: 0 success, 1 verification mismatch, 2 user error (one line on stderr,
no traceback, no half-written output), 3 internal error (a bug in tinycc-nn).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from pathlib import Path

import numpy as np

from . import __version__
from .backend import available_targets, get_backend
from .compiler import compile as compile_model
from .errors import TinyccError
from .outfiles import check_file_target, check_folder_target, write_file
from .printer import print_graph
from .progress import progress_bar


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise TinyccError(message)


def _warn(msg: str) -> None:
    print(f"tinycc-nn: warning: {one_line(msg)}", file=sys.stderr)


_LINE_BREAKING = {"Cc", "Cf", "Zl", "Zp"}


def one_line(text: str) -> str:
    """`text` with control characters (newlines, ANSI escapes, bidi overrides) escaped, so
    a node name cannot break the one-line message or drive the terminal."""
    if text.isprintable():
        return text
    return "".join(repr(ch)[1:-1] if unicodedata.category(ch) in _LINE_BREAKING else ch
                   for ch in text)


def _message(e: TinyccError) -> str:
    """One line, or a parse error's location line plus its source and caret lines."""
    return "\n".join(one_line(ln) for ln in str(e).split("\n")) if getattr(e, "caret", False) \
        else one_line(str(e))


def _options(args) -> dict:
    opts = {}
    if getattr(args, "opt", None):
        opts["opt"] = args.opt
    for item in getattr(args, "option", None) or []:
        if "=" not in item:
            raise TinyccError(f"--option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        opts[k.replace("-", "_")] = _parse_value(v)
    return opts


def _parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def _dump_hook(spec):
    if not spec:
        return None
    wanted = {s for item in spec for s in item.split(",")}

    def hook(name, graph):
        if "all" in wanted or name in wanted:
            sys.stderr.write(f"# IR after {name}\n{print_graph(graph)}")
    return hook, wanted


def _compile(args, **extra):
    dump = _dump_hook(getattr(args, "dump_ir", None))
    hook = dump[0] if dump else None
    art = compile_model(args.model, args.target, on_pass=hook, warn=_warn,
                        stop_after=getattr(args, "stop_after", None),
                        verify_ir=getattr(args, "verify_ir", False), **_options(args), **extra)
    if dump:
        from .pipeline import check_pass_name, pipeline_for
        passes = pipeline_for(art.backend, art.options)
        for name in dump[1]:
            check_pass_name(name, passes, "--dump-ir")
    _warn_unapplied_options(args, art)
    return art


def cmd_compile(args) -> int:
    if args.output == "":
        raise TinyccError("-o: an empty folder name")
    out = check_folder_target(args.output or f"{Path(args.model).stem}.{args.target}")
    art = _compile(args)
    if not art.files:
        print(f"stopped after {args.stop_after}; nothing written", file=sys.stderr)
        return 0
    art.write(out)
    files = [*art.files, "report.json"]
    r = art.report
    sizes = []
    for what, unit in (("rom", r["rom_unit"]), ("ram", "bytes")):
        if r.get(f"{what}_used") is not None:
            cap = f"/{r[f'{what}_capacity']}" if r.get(f"{what}_capacity") else ""
            sizes.append(f"{what.upper()} {r[f'{what}_used']}{cap} {unit}")
    if r.get("cycles_per_inference"):
        sizes.append(f"{r['cycles_per_inference']} cycles/inference")
    summary = f" ({', '.join(sizes)})" if sizes else ""
    print(f"{args.target}: wrote {', '.join(sorted(files))} to {out}/{summary}")
    if r.get("note"):            # what was not measured, and why
        _warn(f"{args.target}: {r['note']}")
    return 0


def _warn_unapplied_options(args, art) -> None:
    """An --option the report shows with another value could not apply: say so."""
    for key, value in _options(args).items():
        if key in art.report and key != "opt" and art.report[key] != value:
            _warn(f"--option {key}={value} could not apply to this model on {args.target}; "
                  f"the program has {key}={art.report[key]}")


def cmd_ir(args) -> int:
    args.stop_after = args.after
    art = _compile(args)
    sys.stdout.write(print_graph(art.graph))
    return 0


def cmd_targets(args) -> int:
    for name, ep in sorted(available_targets().items()):
        try:
            desc = get_backend(name).description
        except TinyccError as e:
            desc = f"(broken: {e})"
        print(f"{name:12s} {desc}")
    return 0


def _load_inputs(path, limit):
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TinyccError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:
        why = "save the inputs with numpy.save" if "pickle" in str(e) else str(e)
        raise TinyccError(f"{path}: not a .npy array ({why})") from None
    if not isinstance(x, np.ndarray) or x.ndim < 1:
        raise TinyccError(f"{path}: need an array with a leading batch dimension")
    if x.shape[0] == 0:
        raise TinyccError(f"{path}: holds no inputs (shape {list(x.shape)})")
    if x.dtype.kind not in "biuf":
        raise TinyccError(f"{path}: holds {x.dtype} values; the inputs are real numbers "
                          "(float32, or integers for an integer input)")
    if limit is not None:
        if limit < 1:
            raise TinyccError("--limit must be at least 1")
        x = x[:limit]
    return x


def _progress(args, n: int, what: str):
    """A bar while the inputs run (on a terminal, not with --json), then the summary line."""
    return progress_bar(n, f"{args.target}: {what}", enabled=not getattr(args, "json", False))


def _reference(args, art, x):
    """onnxruntime for .onnx models; the python reference backend for .tir files."""
    from .verify import compare, verify_artifact, VerifyResult
    if not str(args.model).endswith(".tir"):
        with _progress(args, len(x), "verify") as bar:
            return verify_artifact(art, args.model, x, optimized_ort=args.ort_optimized,
                                   progress=bar)
    if args.ort_optimized:
        _warn("--ort-optimized: a .tir model is compared with the python reference, "
              "not onnxruntime; the flag has no effect")
    with _progress(args, len(x), "verify") as bar:
        ours, stats = art.run(x, with_stats=True, progress=bar)
    ref = compile_model(args.model, "python").run(x)
    bad, detail = compare(ours, ref)
    from .verify import _class_of
    agree = int((_class_of(ours) == _class_of(ref)).sum())
    return VerifyResult(len(bad), int(bad.sum()), agree,
                        int(np.argmax(bad)) if bad.any() else None, ours, stats, detail)


def cmd_verify(args) -> int:
    x = _load_inputs(args.inputs, args.limit)
    art = _compile(args)
    if not art.files:
        raise TinyccError("verify cannot stop early; drop --stop-after")
    res = _reference(args, art, x)
    s = res.summary()
    s.update(target=args.target, rom_used=art.report.get("rom_used"), ram_used=art.report.get("ram_used"))
    if args.json:
        print(json.dumps(s))
    else:
        ref = "python reference" if str(args.model).endswith(".tir") else "onnxruntime"
        if res.reading == "integer":
            ref += " (integer reading: its fused integer kernels, default optimization level)"
        line = (f"{args.target}: {s['n']} inputs, {s['mismatches']} mismatches vs {ref}, "
                f"argmax agree {s['argmax_agree']}/{s['n']}")
        if s["cycles_mean"] is not None:
            line += f", cycles mean {s['cycles_mean']:.0f} max {s['cycles_max']}"
        if s["instructions_mean"] is not None:
            line += f", instructions mean {s['instructions_mean']:.0f}"
        print(line)
        if res.detail:
            print(f"first mismatch: {res.detail}")
        if res.float_reading is not None:
            f = res.float_reading
            print(f"float reading (onnxruntime, optimizations off): {f['mismatches']}/{s['n']} "
                  f"inputs differ, largest difference {f['max_lsb']:g} LSB, argmax agree "
                  f"{f['argmax_agree']}/{s['n']}")
    return 0 if res.mismatches == 0 else 1


def cmd_run(args) -> int:
    if args.output == "":
        raise TinyccError("-o: an empty file name")
    out = check_file_target(args.output, (".npy", ".npz"))
    x = _load_inputs(args.inputs, args.limit)
    art = _compile(args)
    with _progress(args, len(x), "run") as bar:
        outs = art.run(x, progress=bar)
    if out.suffix == ".npz":
        write_file(out, lambda f: np.savez(f, **outs))
    else:
        write_file(out, lambda f: np.save(f, next(iter(outs.values()))))
    print(f"{args.target}: {len(x)} inputs -> {out}", file=sys.stderr)
    return 0


def _fixed(items) -> dict:
    fixed = {}
    for item in items or []:
        if "=" not in item:
            raise TinyccError(f"--fix {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        fixed[k] = _parse_value(v)
    return fixed


def cmd_search(args) -> int:
    try:
        from .search.driver import search
    except ImportError as e:
        raise TinyccError(f"search needs the train extra ({e.name} is missing): "
                          'pip install -e ".[train]"') from None
    if args.output == "":
        raise TinyccError("-o: an empty folder name")
    if args.threads is not None:
        if args.threads < 1:
            raise TinyccError("--threads must be at least 1")
        import torch
        torch.set_num_threads(args.threads)
    result = search(args.target, args.output, options=_options(args), sizes=args.size,
                    trials=args.trials, timeout=args.timeout, storage=args.storage,
                    study_name=args.study, seed=args.seed, train_limit=args.train_limit,
                    test_limit=args.test_limit, epochs_scale=args.epochs_scale,
                    fixed=_fixed(args.fix), verify_images=args.verify_images)
    best = result["winner"]
    if result["interrupted"]:
        return 130
    if best is None:
        print(f"{args.target}: no trial trained (every model was rejected); see {args.output}/pareto.md")
        return 0
    v = best["verify"]
    print(f"{args.target}: best trial {best['trial']}, {100 * best['accuracy']:.2f}%, "
          f"ROM {best['rom_used']} {best['rom_unit']}, RAM {best['ram_used']} B; wrote model.onnx, "
          f"{args.target}/, pareto.md/json/png, winner.md to {args.output}/"
          + (f"; verified on {v['n']} images, {v['mismatches']} mismatches" if v else ""))
    return 0 if v is None or v["mismatches"] == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tinycc-nn", description="Compile quantized ONNX networks for tiny MCUs.")
    p.add_argument("--version", action="version", version=f"tinycc-nn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp, target_required=True):
        sp.add_argument("model", help="an .onnx model or .tir IR file")
        sp.add_argument("-t", "--target", required=target_required, default="python")
        sp.add_argument("--opt", choices=["size", "speed"], help="size/speed trade-off")
        sp.add_argument("--option", action="append", metavar="KEY=VALUE", help="a backend option")
        sp.add_argument("--verify-ir", action="store_true", help="verify the IR after every pass")
        sp.add_argument("--dump-ir", action="append", metavar="PASS|all",
                        help="print the IR after this pass (comma list, or all) to stderr")

    c = sub.add_parser("compile", help="compile a model for a target")
    common(c)
    c.add_argument("-o", "--output", help="output folder (default MODEL.TARGET)")
    c.add_argument("--stop-after", metavar="PASS", help="stop after this pass")
    c.set_defaults(func=cmd_compile)

    i = sub.add_parser("ir", help="print the IR text")
    common(i, target_required=False)
    i.add_argument("--after", metavar="PASS", help="print the IR after this pass (default: all passes)")
    i.set_defaults(func=cmd_ir)

    t = sub.add_parser("targets", help="list the targets")
    t.set_defaults(func=cmd_targets)

    for name, func, hlp in (("verify", cmd_verify, "run the compiled program, compare with onnxruntime"),
                            ("run", cmd_run, "run the compiled program on inputs")):
        v = sub.add_parser(name, help=hlp)
        common(v)
        v.add_argument("--inputs", required=True, metavar="X.npy")
        v.add_argument("--limit", type=int, metavar="N", help="use the first N inputs")
        if name == "verify":
            v.add_argument("--json", action="store_true", help="one JSON object on stdout")
            v.add_argument("--ort-optimized", action="store_true",
                           help="compare with onnxruntime's optimized graph instead of the plain one")
        else:
            v.add_argument("-o", "--output", required=True, metavar="Y.npy|Y.npz")
        v.set_defaults(func=func)

    s = sub.add_parser("search", help="search MNIST models that fit a target (needs the train extra)")
    s.add_argument("-t", "--target", required=True)
    s.add_argument("--opt", choices=["size", "speed"], help="size/speed trade-off")
    s.add_argument("--option", action="append", metavar="KEY=VALUE", help="a backend option")
    s.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="the study (study.log), trials, reports and the best model")
    s.add_argument("--trials", type=int, metavar="N", help="stop when the study has N finished trials")
    s.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after SECONDS")
    s.add_argument("--size", type=int, action="append", metavar="N",
                   help="an input size to search (N x N pixels; repeat for several)")
    s.add_argument("--fix", action="append", metavar="NAME=VALUE",
                   help="pin a dimension of the search (e.g. depth=1)")
    s.add_argument("--storage", metavar="URL", help="a shared database, e.g. postgresql://user:pw@host/db")
    s.add_argument("--study", metavar="NAME", help="the study's name (default tinycc-nn-TARGET)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler and the training")
    s.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images")
    s.add_argument("--test-limit", type=int, metavar="N", help="measure on the first N test images")
    s.add_argument("--epochs-scale", type=float, default=1.0, metavar="F",
                   help="multiply every epoch count by F")
    s.add_argument("--verify-images", type=int, default=1000, metavar="N",
                   help="verify the winner on the first N test images (default 1000; 10000: all)")
    s.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads per training (default: torch's, all cores); "
                        "1 for one worker per core")
    s.set_defaults(func=cmd_search)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()
        if not argv:
            raise TinyccError(f"no command; {parser.format_usage().strip()} "
                              "(tinycc-nn COMMAND --help for each)")
        args = parser.parse_args(argv)
        with np.errstate(all="ignore"):     # float32 overflow etc. are onnxruntime's semantics
            return args.func(args)
    except TinyccError as e:
        print(f"tinycc-nn: error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: say so in one line; TINYCC_NN_DEBUG=1 shows the traceback
        if os.environ.get("TINYCC_NN_DEBUG"):
            raise
        print(f"tinycc-nn: internal error: {type(e).__name__}: {one_line(str(e))} "
              "(set TINYCC_NN_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
