"""The `honing` command: run, train, compress, validate, evaluate, serve, drift, show, dashboard, init.

Exit codes: 0 success, 2 bad input (recipe, arguments, data), 1 failure (`honing drift`: drift
found), 130 interrupted (Ctrl-C).
Only this module reads ``sys.argv``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep one message format
        self.print_usage(sys.stderr)
        print(f"honing: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}; allowed: an integer >= 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number of seconds > 0") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"got {value}; allowed: a number of seconds > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="honing", description="Optimize and fine-tune deep neural networks from one YAML recipe.")
    p.add_argument("--debug", action="store_true", help="print the traceback of an error too (anywhere on the line)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, *, search: bool) -> None:
        sp.add_argument("--out", help="output folder (default: output.dir of the recipe, else runs/<name>)")
        sp.add_argument("--seed", type=int, help="override the recipe's seed")
        sp.add_argument("--threads", type=_positive_int, help="torch threads per process (default: the recipe's)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--nproc", type=_positive_int, help="data-parallel processes (DDP) for the "
                        + ("final model" if search else "training") + " (training.distributed.processes)")
        if search:
            sp.add_argument("--workers", type=_positive_int, default=1, help="local worker processes (default 1)")
            sp.add_argument("--storage", help="study storage URL: sqlite:///file.db, postgresql://..., "
                            "or a .journal file (default: study.journal in the output folder)")
            sp.add_argument("--n-trials", type=_positive_int, help="override tune.n_trials")
            sp.add_argument("--timeout", type=_positive_float, help="override tune.timeout (seconds)")
            sp.add_argument("--executor", choices=["processes", "ray"], help="where trials run: processes (local, "
                            "the default) or ray (--workers Ray tasks; pip install 'honing[ray]')")
            sp.add_argument("--address", help="the Ray cluster for --executor ray (default: a local Ray for the run)")
            sp.add_argument("--trial-cpus", type=_positive_float, default=1.0, help="CPUs per Ray trial task "
                            "(default 1; torch threads in it)")
            sp.add_argument("--trial-gpus", type=float, default=0.0, help="GPUs per Ray trial task (default 0; a "
                            "fraction such as 0.5 shares a GPU)")

    sp = sub.add_parser("run", help="search, train, test and report (resumes on the same output folder)")
    sp.add_argument("recipe")
    common(sp, search=True)
    sp = sub.add_parser("worker", help="run trials of a study that `honing run --storage URL` leads (this or "
                        "another machine)")
    sp.add_argument("recipe", nargs="?", help="the leader's recipe (optional: the study stores it)")
    sp.add_argument("--storage", required=True, help="the study's storage: postgresql://... (several machines), or "
                    "sqlite:///file.db or a .journal file in the leader's run folder (this machine)")
    sp.add_argument("--study", help="the study name (the leader recipe's name; default: the recipe's)")
    sp.add_argument("--out", help="folder for the trials' files (default: the leader's run folder when this machine "
                    "sees it, else runs/<study>)")
    sp.add_argument("--workers", type=_positive_int, default=1, help="local worker processes (default 1)")
    sp.add_argument("--threads", type=_positive_int, help="torch threads per process (default 1)")
    sp.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the leader to create the study "
                    "(default 60)")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")
    steering = {
        "suggest": ("queue a configuration for a run's study: its next trial runs it",
                    ("values", "+", "PATH=VALUE", "searched parameters and values (YAML), e.g. "
                     "training.optimizer.lr=0.003 'model.hidden=[128, 64]'; the others are the sampler's")),
        "space": ("narrow or widen a number's range for the rest of a run's study",
                  ("ranges", "*", "PATH=LOW..HIGH", "new ranges, e.g. training.optimizer.lr=1e-4..3e-3 "
                   "model.layers=2..4; none: show the current ranges")),
    }
    for name, (summary, (dest, nargs, metavar, text)) in steering.items():
        sp = sub.add_parser(name, help=summary)
        sp.add_argument("run_dir", help="the run folder (its study: study.journal, or the storage it names)")
        sp.add_argument(dest, nargs=nargs, metavar=metavar, help=text)
        sp.add_argument("--storage", help="the study's storage URL, when the run folder's is a database with a "
                        "password (results.json keeps it masked)")
    sp = sub.add_parser("train", help="train one configuration of a recipe (no search), test and report")
    sp.add_argument("recipe")
    common(sp, search=False)
    sp = sub.add_parser("compress", help="run a recipe's compression steps on a saved model")
    sp.add_argument("model_dir", help="a model folder (or a run folder with model/)")
    sp.add_argument("recipe", help="a recipe with a compress section (its data, training and evaluate sections "
                    "are used; the architecture comes from the model folder)")
    sp.add_argument("--out", help="folder for compress/ (default: the model folder's parent)")
    sp.add_argument("--threads", type=_positive_int, help="torch threads for fine-tuning (default: the recipe's)")
    sp.add_argument("--quiet", action="store_true", help="no progress lines")
    sp = sub.add_parser("validate", help="check a recipe without running it")
    sp.add_argument("recipe")
    sp = sub.add_parser("evaluate", help="evaluate a saved model on a data source")
    sp.add_argument("model_dir")
    sp.add_argument("--data", required=True, help="a data source, e.g. csv:new.csv or fashion-mnist")
    sp.add_argument("--split", choices=["unseen", "test", "all"], default="unseen",
                    help="unseen (default): rows the model never trained on (the run's held-out test rows of its "
                    "own source, re-created; a fixed test set; else every row of another source); test: the "
                    "source's test split (exit 2 when it has none); all: every row")
    sp.add_argument("--json", action="store_true", help="print the metrics as JSON")
    sp = sub.add_parser("predict", help="predict new rows with a saved model: a CSV (columns by name; a text model "
                        "reads its text column) or an .npz (array x) -> a CSV of predictions")
    sp.add_argument("model_dir", help="a model folder (or a run folder with model/, or an ensemble/ folder)")
    sp.add_argument("input", help="rows to predict: a .csv/.tsv file (a target column, if there, is ignored) or an "
                    ".npz file with an array x (csv:new.csv and npz:rows.npz, as a recipe names a source, work too)")
    sp.add_argument("--out", help="the CSV to write (default: standard output)")
    sp.add_argument("--proba", action="store_true", help="classification: a probability column per class")
    sp.add_argument("--keep-columns", action="store_true",
                    help="a CSV input: its columns come first in the output, then the predictions")
    sp.add_argument("--chunk-rows", type=_positive_int, default=10_000,
                    help="rows read and predicted at a time (memory stays bounded; default 10000)")
    sp = sub.add_parser("robust", help="attack a saved classifier on a data source: accuracy under FGSM, PGD, APGD "
                        "and Square at each epsilon (docs/robust.md)")
    sp.add_argument("model_dir")
    sp.add_argument("--data", required=True, help="a data source, e.g. fashion-mnist (its held-out test rows)")
    sp.add_argument("--split", choices=["unseen", "test", "all"], default="unseen", help="which rows, as in evaluate")
    sp.add_argument("--epsilons", type=float, nargs="+", default=[0.05, 0.1],
                    help="attack radii in the data's own units ([0, 1] pixel units for images; default 0.05 0.1)")
    sp.add_argument("--attacks", nargs="+", default=["fgsm", "pgd", "apgd", "square"],
                    help="fgsm, pgd, apgd, square (default: all four)")
    sp.add_argument("--norm", choices=["linf", "l2"], default="linf")
    sp.add_argument("--steps", type=_positive_int, default=20, help="pgd and apgd steps (default 20)")
    sp.add_argument("--queries", type=_positive_int, default=1000, help="square: queries per row (default 1000)")
    sp.add_argument("--rows", type=_positive_int, default=1000, help="rows attacked, the first ones (default 1000)")
    sp.add_argument("--json", action="store_true", help="print the figures as JSON")
    sp = sub.add_parser("serve", help="serve a model over HTTP (FastAPI; 127.0.0.1, token auth on by default)")
    sp.add_argument("model_dir", help="a run folder, its model/ folder, or a compression stage's folder")
    sp.add_argument("--variant", help="model, or a compression stage (03-export, export); default: the run's "
                    "float ONNX variant when it has one, else model/")
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument("--no-auth", action="store_true", help="no bearer token (only on a loopback --host)")
    sp.add_argument("--token-file", help="the token file (default MODEL_DIR/serving/token, created 0600)")
    sp.add_argument("--state-dir", help="token and input log folder (default MODEL_DIR/serving)")
    sp.add_argument("--workers", type=_positive_int, default=1, help="server processes (default 1)")
    sp.add_argument("--threads", type=_positive_int, help="threads per worker (default: cores / workers)")
    sp.add_argument("--max-body-bytes", type=_positive_int, default=1 << 20, help="413 above (default 1 MiB)")
    sp.add_argument("--max-rows", type=_positive_int, default=1024, help="rows per request (default 1024)")
    sp.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per request (504 past it)")
    sp.add_argument("--max-batch", type=_positive_int, default=64, help="rows per forward pass (default 64)")
    sp.add_argument("--max-wait-ms", type=float, default=0.0, help="how long a batch waits for more requests "
                    "(default 0: a lone request runs at once; requests arriving meanwhile form the next batch)")
    sp.add_argument("--log-sample", type=float, default=1.0, help="share of requests logged for drift (0-1)")
    sp.add_argument("--window", type=_positive_int, default=1000, help="rows GET /drift compares (the latest)")
    sp = sub.add_parser("drift", help="compare a data source with a model's training data (exit 1: drift)")
    sp.add_argument("model_dir")
    sp.add_argument("--data", required=True, help="a data source, e.g. csv:new.csv")
    sp.add_argument("--variant", help="as for serve")
    sp.add_argument("--reference", help="a reference.json (default: the model folder's)")
    sp.add_argument("--alpha", type=float, default=0.01, help="significance after Benjamini-Hochberg (default 0.01)")
    sp.add_argument("--method", choices=["auto", "psi"], default="auto", help="auto: KS/chi-square/Wasserstein/"
                    "Jensen-Shannon by rule; psi: population stability index everywhere")
    sp.add_argument("--embedding-test", choices=["mmd", "classifier"], default="mmd", help="images, text: how the "
                    "model's embeddings are compared (mmd: kernel two-sample test; classifier: a domain "
                    "classifier's out-of-fold AUC)")
    sp.add_argument("--max-rows", type=_positive_int, help="compare only the first N rows")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.add_argument("--html", help="also write the report as an HTML page here")
    sp = sub.add_parser("refit", help="fine-tune a served model on new data; promote it when it passes the gates "
                        "(exit 1: not promoted)")
    sp.add_argument("model_dir", help="what `honing serve` serves: a run folder or a model folder")
    sp.add_argument("--data", required=True, help="the new data source, e.g. csv:new.csv")
    sp.add_argument("--out", required=True, help="folder for the candidate model and refit.json")
    sp.add_argument("--target", help="the new source's target column (default: the model's recipe's rule)")
    sp.add_argument("--epochs", type=_positive_int, help="fine-tuning epochs (default: the recipe's)")
    sp.add_argument("--lr-scale", type=_positive_float, default=0.3, help="learning rate as a share of the "
                    "recipe's (default 0.3)")
    sp.add_argument("--replay", type=int, default=500, help="old training rows mixed in (default 500; 0: none)")
    sp.add_argument("--lwf", type=float, default=0.0, help="weight of distillation towards the old model "
                    "(learning without forgetting; 0-1, default 0)")
    sp.add_argument("--ewc", type=float, default=0.0, help="elastic weight consolidation strength (lambda; "
                    "default 0: none)")
    sp.add_argument("--forgetting-budget", type=float, default=0.01, help="largest allowed drop on each earlier "
                    "data set's test rows (default 0.01: one point)")
    sp.add_argument("--search", type=int, default=0, help="trials of a search over the refit options, scored on "
                    "validation rows (default 0: no search)")
    sp.add_argument("--space", help="what --search varies: a YAML mapping (or a file holding one) of field -> "
                    "distribution, e.g. '{lr_scale: {float: [0.05, 2], log: true}, ewc: {float: [0, 1000]}}' "
                    "(default: lr_scale, replay, lwf)")
    sp.add_argument("--no-promote", action="store_true", help="evaluate and write the candidate only")
    sp.add_argument("--quiet", action="store_true")
    sp = sub.add_parser("log", help="write a server's logged rows as a data file to label (for refit --data)")
    sp.add_argument("model_dir", help="what `honing serve` serves")
    sp.add_argument("--out", required=True, help="the file: .csv for tables and text, .npz for images and arrays")
    sp.add_argument("--state-dir", help="the server's --state-dir (default: MODEL_DIR/serving)")
    sp = sub.add_parser("rollback", help="serve an earlier version (a running server switches by itself)")
    sp.add_argument("model_dir")
    sp.add_argument("--to", help="the version (default: the one before the current)")
    sp = sub.add_parser("show", help="summary of a run folder")
    sp.add_argument("run_dir")
    sp.add_argument("--trials", type=int, default=10, help="how many of the best trials to list (default 10)")
    sp = sub.add_parser("dashboard", help="optuna-dashboard on a run's study (bound to 127.0.0.1)")
    sp.add_argument("run_dir")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080)
    sp = sub.add_parser("init", help="write an example recipe")
    sp.add_argument("path", nargs="?", default="recipe.yaml")
    sp.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error ends as one message and an exit code, never a traceback
    (``--debug``, or HONING_DEBUG=1, prints it too)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or bool(os.environ.get("HONING_DEBUG"))  # accepted anywhere on the line
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    if not debug:  # warnings as one line each, without the source line that raised them
        import warnings

        warnings.formatwarning = lambda message, category, *_a, **_k: f"honing: warning: {message}\n"

    try:
        from honing._core import load_plugins

        load_plugins()  # installed plugins' stages, steps and recipe sections, before any recipe is read
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("\nhoning: interrupted; re-run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug:
            traceback.print_exc()
        code, message = _describe(err)
        print(message, file=sys.stderr)
        return code


def _describe(err: Exception) -> tuple[int, str]:
    """The exit code and one-line message for an error: 2 for bad input, 1 for the environment
    (a read-only folder, a full disk, memory) and for anything unexpected."""
    from honing._core import ConfigError, DataError, HoningError, UnknownNameError

    bad_path = (FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError)
    if isinstance(err, (ConfigError, DataError, UnknownNameError, *bad_path)):
        return EXIT_BAD_INPUT, f"honing: error: {_os_message(err) if isinstance(err, OSError) else err}"
    if isinstance(err, HoningError):
        return EXIT_FAILURE, f"honing: failed: {err}"
    if isinstance(err, OSError):
        return EXIT_FAILURE, f"honing: failed: {_os_message(err)}"
    if isinstance(err, MemoryError):
        return EXIT_FAILURE, "honing: failed: out of memory (a smaller batch size, model or data set needs less)"
    if isinstance(err, RecursionError):
        return EXIT_BAD_INPUT, "honing: error: the input nests too deeply to be read"
    return EXIT_FAILURE, (f"honing: failed: unexpected {type(err).__name__}: {str(err)[:500]}\n"
                          "  (this is a bug; re-run with --debug for the traceback and report it)")


def _os_message(err: OSError) -> str:
    """What an OSError means for the user: the file, and why (no space left, read-only, ...)."""
    hints = {errno.ENOSPC: "no space left on the device: free some space and re-run the same command to resume",
             errno.EDQUOT: "disk quota exceeded: free some space and re-run the same command to resume",
             errno.EROFS: "the file system is read-only: choose another folder with --out",
             errno.EACCES: "permission denied: choose a folder you can write to with --out",
             errno.EPERM: "operation not permitted: choose a folder you can write to with --out",
             errno.ENOTDIR: "a part of the path is a file, not a folder",
             errno.EISDIR: "the path is a folder, not a file",
             errno.EEXIST: "the path exists and is not a folder"}
    where = f" {err.filename!r}" if err.filename else ""
    why = hints.get(err.errno or -1, err.strerror or str(err))
    return f"cannot use{where}: {why}"


def _cmd_run(args: argparse.Namespace) -> int:
    from honing.pipeline import run

    result = run(args.recipe, out=args.out, workers=args.workers, storage=args.storage, n_trials=args.n_trials,
                 timeout=args.timeout, seed=args.seed, threads=args.threads, progress=not args.quiet, nproc=args.nproc,
                 executor=args.executor, address=args.address, trial_cpus=args.trial_cpus, trial_gpus=args.trial_gpus)
    _print_summary(result.out_dir, result.results)
    return _compress_exit(result.results.get("compress"))


def _cmd_compress(args: argparse.Namespace) -> int:
    from honing.pipeline import compress_folder

    out = compress_folder(args.model_dir, args.recipe, out=args.out, threads=args.threads, progress=not args.quiet)
    _print_compression(out)
    return _compress_exit(out)


def _compress_exit(compressed: dict[str, Any] | None) -> int:
    """1 when a compression step failed (everything else was saved)."""
    failed = (compressed or {}).get("failed") or []
    for f in failed:
        print(f"honing: compression step {f['step']} ({f['stage']}) failed: {f['error']}", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK


def _print_nas(n: dict[str, Any] | None) -> None:
    if not n:
        return
    show = lambda o, v: f"{o} {v:,.0f}" if o in ("params", "flops") else f"{o} {v:.4g}"  # noqa: E731
    chosen = ", ".join(show(o, v) for o, v in zip(n["objectives"], n["chosen"]["scores"]))
    base = ", ".join(show(o, v) for o, v in zip(n["objectives"], n["baseline"]["scores"]))
    print(f"  architecture: {n['strategy']} over {n['size']:,} ({n['space']} space), {n['evaluated']} candidates "
          f"trained {n['epochs']} epochs" + (f", {n['failed']} failed" if n["failed"] else ""))
    print(f"    chose candidate {n['chosen']['index']}: {chosen}; the recipe's own architecture: {base}"
          + (f"; Pareto front of {len(n['front'])}" if n["front"] else ""))
    if n.get("promoted"):  # the choice was made by the full training, not by the proxy's values above
        best, metric = n["promoted"][0], n["objectives"][0]
        top = max(n["promoted"], key=lambda p: p["proxy"] if n["directions"][0] == "maximize" else -p["proxy"])
        print(f"    promoted: the best {len(n['promoted'])} trained again as the final model is; candidate "
              f"{best['index']} scored {metric} {best['full']:.4g} there"
              + (f" (the proxy's best, candidate {top['index']}: {top['full']:.4g})" if top is not best else ""))


def _print_ensemble(ens: dict[str, Any] | None, primary: str | None) -> None:
    if not ens:
        return
    if ens.get("skipped"):
        print(f"  ensemble:     skipped: {ens['skipped']}")
        return
    members = ens["members"]
    print(f"  ensemble ({ens['method']} of {len(members)} trial{'s' if len(members) != 1 else ''}, weights from "
          f"{ens['rows']}) -> {ens['folder']}")
    test = ens.get("test")
    if not test:
        return
    metric = primary if primary in test["ensemble"]["metrics"] else next(iter(test["ensemble"]["metrics"]))
    cols = [metric] + (["loss"] if metric != "loss" else [])
    ece = "ece" in test["ensemble"]
    print(f"    {'test rows':<24}" + "".join(f"{c:>12}" for c in cols) + (f"{'ECE':>9}" if ece else "")
          + f"{'params':>12}{'ms (1 row)':>12}")
    for label, row in (("ensemble", test["ensemble"]), (f"best trial ({test['best_single']['trial']})",
                                                         test["best_single"]), ("final model", test["final_model"])):
        print(f"    {label:<24}" + "".join(f"{row['metrics'].get(c, float('nan')):>12.4f}" for c in cols)
              + (f"{row['ece']:>9.4f}" if ece else "") + f"{row['parameters']:>12,}{row['latency_ms']:>12.3f}")


def _print_compression(compressed: dict[str, Any] | None) -> None:
    if not compressed:
        return
    metric = compressed["metric"]
    sizes = [str(b) for b in compressed["latency"]["batch_sizes"]]
    head = f"  {'stage':<26} {'runtime':<11} {'size':>10} {'params':>10} " + " ".join(
        f"{'ms b' + b:>10}" for b in sizes) + f" {metric:>10}"
    print("  compression (ratios and differences against the uncompressed model):")
    print(head)
    for row in compressed["stages"]:
        vs = row.get("vs_uncompressed") or {}
        cells = [f"{row['size_bytes'] / 1024:.0f}K" + (f" {vs['size']:.2f}x" if 'size' in vs else ""),
                 f"{row['parameters']:,}"]
        cells += [f"{row['latency_ms'][b]:.3f}" + (f" {vs['latency_' + b]:.2f}x" if vs.get('latency_' + b) else "")
                  for b in sizes]
        value = row["metrics"].get(metric)
        cells.append("" if value is None else f"{value:.4f}" + (f" {100 * vs[metric]:+.2f}pt" if metric in vs else ""))
        print(f"  {row['stage']:<26} {row['runtime']:<11} " + " ".join(f"{c:>10}" for c in cells))


def _cmd_worker(args: argparse.Namespace) -> int:
    from honing.pipeline import work

    r = work(args.recipe, storage=args.storage, study=args.study, out=args.out, workers=args.workers,
             threads=args.threads, wait=args.wait, progress=not args.quiet)
    ran = ", ".join(f"{v} {k}" for k, v in r.ran.items() if v) or "none"
    study = ", ".join(f"{v} {k}" for k, v in r.counts.items() if v)
    print(f"honing worker: study {r.study_name!r} in {r.storage}: trials run here: {ran}; the study: {study} "
          f"(budget {r.n_trials})")
    return EXIT_OK


def _cmd_suggest(args: argparse.Namespace) -> int:
    import yaml

    from honing._core import ConfigError
    from honing.tune import suggest

    values = {}
    for item in args.values:
        path, eq, text = item.partition("=")
        if not eq or not path:
            raise ConfigError(f"invalid suggestion {item!r}; allowed: PATH=VALUE, e.g. training.optimizer.lr=0.003")
        try:
            values[path.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"invalid value in {item!r}: {err}") from None
    storage, name = _run_study(Path(args.run_dir), args.storage)
    out = suggest(storage, name, values)
    left = out["budget_left"]
    print(f"honing: queued for study {name!r}: " + ", ".join(f"{k}={v!r}" for k, v in values.items())
          + f"; {out['queued']} suggestion(s) waiting")
    if left == 0:
        print("honing: the study's budget is spent: re-run with --n-trials N (more than before) to run it")
    return EXIT_OK


def _cmd_space(args: argparse.Namespace) -> int:
    import yaml

    from honing._core import ConfigError
    from honing.tune import change_space, study_space

    storage, name = _run_study(Path(args.run_dir), args.storage)
    for item in args.ranges:
        path, eq, text = item.partition("=")
        low_text, dots, high_text = text.partition("..")
        if not eq or not path or not dots:
            raise ConfigError(f"invalid range {item!r}; allowed: PATH=LOW..HIGH, e.g. training.optimizer.lr=1e-4..3e-3")
        try:
            low, high = yaml.safe_load(low_text), yaml.safe_load(high_text)
        except yaml.YAMLError as err:
            raise ConfigError(f"invalid range {item!r}: {err}") from None
        out = change_space(storage, name, path.strip(), _number_of(low), _number_of(high))
        print(f"honing: study {name!r}: {out['path']} from {out['before'][0]:g}..{out['before'][1]:g} to "
              f"{out['after'][0]:g}..{out['after'][1]:g}, from trial {out['from_trial']} on")
    for path, spec in study_space(storage, name).to_spec().items():
        print(f"  {path}: {spec}")
    return EXIT_OK


def _number_of(value: Any) -> Any:
    """YAML reads 1e-4 as text: a number written so is a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _run_study(folder: Path, storage_url: str | None = None) -> tuple[Any, str]:
    """A run folder's study: its storage (``storage_url`` when given) and name."""
    from honing._core import DataError
    from honing.tune import resolve_storage

    results_file = folder / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    url = storage_url or (results.get("study") or {}).get("storage") or ""
    if not (folder / "study.journal").is_file() and not url.startswith(("sqlite", "postgresql")):
        raise DataError(f"{str(folder)!r} holds no study (no study.journal, and no results.json naming a storage)")
    storage = resolve_storage(url if url.startswith(("sqlite", "postgresql")) else None, folder)
    return storage, (results.get("study") or {}).get("name") or _study_name(folder)


def _cmd_train(args: argparse.Namespace) -> int:
    from honing.pipeline import train_once

    result = train_once(args.recipe, out=args.out, threads=args.threads, progress=not args.quiet, seed=args.seed,
                        nproc=args.nproc)
    _print_summary(result.out_dir, result.results)
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from honing.recipe import validate_recipe

    problems = validate_recipe(args.recipe)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.recipe}: valid")
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from honing.pipeline import load_model

    model = load_model(args.model_dir)
    metrics = model.evaluate(args.data, split=args.split)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"scored: {metrics.pop('scored')}")
        width = max(len(k) for k in metrics)
        for key, value in metrics.items():
            print(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return EXIT_OK


def _cmd_predict(args: argparse.Namespace) -> int:
    from honing.pipeline import predict_file

    n = predict_file(args.model_dir, args.input, out=args.out, proba=args.proba, keep_columns=args.keep_columns,
                     chunk_rows=args.chunk_rows)
    if args.out:
        print(f"predicted {n} rows -> {args.out}", file=sys.stderr)
    return EXIT_OK


def _cmd_robust(args: argparse.Namespace) -> int:
    from honing._core import ConfigError
    from honing.pipeline import load_model
    from honing.robust import CORRUPTIONS, InputSpace, evaluate_robustness

    loaded = load_model(args.model_dir)
    if loaded.task != "classification":
        raise ConfigError(f"invalid model for honing robust: it does {loaded.task}; allowed: a classifier (attacks "
                          "measure accuracy)")
    x, y, described = loaded.prepared(args.data, split=args.split)
    x, y = x[:args.rows], y[:args.rows]
    # no training rows in a model folder: arrays without a pixel scale and tables are clipped to
    # the range of the rows attacked (images to [0, 1])
    space = InputSpace.from_preprocessor(loaded.preprocessor, x)
    out = evaluate_robustness(loaded.model, x, y, epsilons=args.epsilons, space=space, attacks=args.attacks,
                              norm=args.norm, steps=args.steps, queries=args.queries,
                              corruptions=list(CORRUPTIONS) if x.dim() == 4 else [])
    out["scored"] = described["scored"]
    if args.json:
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"scored: {described['scored']} (the first {out['rows']})")
    _print_robustness(out)
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from honing.serve import ServeConfig, serve

    config = ServeConfig(model_dir=args.model_dir, variant=args.variant, host=args.host, port=args.port,
                         auth=not args.no_auth, token_file=args.token_file, state_dir=args.state_dir,
                         workers=args.workers, threads=args.threads, max_body_bytes=args.max_body_bytes,
                         max_rows=args.max_rows, timeout_s=args.timeout, max_batch=args.max_batch,
                         max_wait_ms=args.max_wait_ms, log_sample=args.log_sample, window=args.window)
    serve(config)
    return EXIT_OK


def _cmd_drift(args: argparse.Namespace) -> int:
    from honing.serve import drift_of_source
    from honing.report import drift_page

    report = drift_of_source(args.model_dir, args.data, variant=args.variant, reference=args.reference,
                             alpha=args.alpha, method=args.method, embedding_test=args.embedding_test,
                             max_rows=args.max_rows)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"drift of {args.data} against the training data of {args.model_dir}:")
        for line in report.lines():
            print(f"  {line}")
    if args.html:
        Path(args.html).write_text(drift_page(report.to_dict(), title=f"drift of {args.data}"), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    return EXIT_FAILURE if report.drifted else EXIT_OK


def _cmd_refit(args: argparse.Namespace) -> int:
    from honing.serve import RefitConfig, refit

    config = RefitConfig(epochs=args.epochs, lr_scale=args.lr_scale, replay=args.replay, lwf=args.lwf, ewc=args.ewc,
                         forgetting_budget=args.forgetting_budget, promote=not args.no_promote, search=args.search,
                         space=_space_argument(args.space))
    result = refit(args.model_dir, args.data, args.out, config, target=args.target, progress=not args.quiet)
    m, sc = result["metric"], result["scores"]
    print(f"refit of {result['from']['folder']} ({result['from']['version']}) on {args.data}: {m}")
    if result["search"]:
        s = result["search"]
        chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in s["best_params"].items())
        print(f"  search: {s['trials']} trials; chose trial {s['best_trial']}: {chosen}")
    print(f"  {'':<10} {'old model':>10} {'candidate':>10}  gate")
    ok = result["gates"]["new_data"]
    print(f"  {'new data':<10} {sc['new_data']['old_model']:>10.4f} {sc['new_data']['candidate']:>10.4f}  candidate >= "
          f"old model: {'pass' if ok else 'FAIL'} ({sc['new_data']['rows']} held-out rows)")
    for entry in [sc["old_data"], *sc.get("earlier_data", [])]:
        drop = entry["old_model"] - entry["candidate"]
        ok = drop <= args.forgetting_budget + 1e-12
        print(f"  {'old data':<10} {entry['old_model']:>10.4f} {entry['candidate']:>10.4f}  drop <= "
              f"{args.forgetting_budget:g}: {'pass' if ok else 'FAIL'} ({entry['rows']} held-out rows of "
              f"{entry['source']})")
    rows = sc["old_data"]["rows"]
    if rows and args.forgetting_budget < 1 / rows:
        print(f"  note: the forgetting budget {args.forgetting_budget:g} is less than one of the {rows} old test rows "
              f"({1 / rows:.4f}): the candidate may lose none of them")
    if result["promoted"]:
        print(f"  promoted: {args.model_dir} now serves {result['promoted']} (honing rollback to undo)")
    else:
        print(f"  not promoted; the candidate is in {result['candidate']}")
    return EXIT_OK if result["promoted"] or args.no_promote else EXIT_FAILURE


def _cmd_log(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from honing.serve import export_log

    done = export_log(args.model_dir, args.out, state_dir=args.state_dir)
    when = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")  # noqa: E731
    print(f"wrote {done['rows']} logged rows ({when(done['first'])} to {when(done['last'])}) to {done['path']}")
    column = f"column {done['target']!r}" if done["target"] else "array y"
    print(f"the {column} holds the model's own predictions: review and correct them first; a refit on them "
          "unreviewed learns nothing the model does not already predict")
    target = f" --target {done['target']}" if done["target"] else ""
    print(f"then: honing refit {args.model_dir} --data {done['source']}{target} --out DIR")
    return EXIT_OK


def _space_argument(text: str | None) -> dict[str, Any] | None:
    """--space: YAML text, or the path of a file holding it (safe_load only)."""
    import yaml

    from honing._core import ConfigError

    if text is None:
        return None
    path = Path(text)
    source = path.read_text(encoding="utf-8") if path.is_file() else text
    try:
        spec = yaml.safe_load(source)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid --space: not YAML ({err})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"invalid --space: got {spec!r}; allowed: a mapping of field -> distribution")
    return spec


def _cmd_rollback(args: argparse.Namespace) -> int:
    from honing._core import ConfigError
    from honing.artifacts import current_version, list_versions, set_current

    versions = list_versions(args.model_dir)
    current = current_version(args.model_dir)
    if args.to is None:
        if current is None or versions.index(current[0]) == 0:
            raise ConfigError(f"invalid rollback of {args.model_dir!r}: no earlier version "
                              f"(versions: {', '.join(versions) or 'none'})")
        target = versions[versions.index(current[0]) - 1]
    else:
        target = args.to
    set_current(args.model_dir, target)
    print(f"{args.model_dir} now serves {target} (was {current[0] if current else 'none'})")
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from honing._core import DataError

    folder = Path(args.run_dir)
    results_file = folder / "results.json"
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        _print_summary(folder, results)
    else:
        results = None
    journal = folder / "study.journal"
    if journal.is_file() or (results and results.get("study")):
        from honing.tune import load_study_result

        study = load_study_result(*_run_study(folder))
        _print_trials(study, args.trials)
    elif results is None:
        raise DataError(f"{str(folder)!r} is not a honing run folder (no results.json and no study.journal)")
    return EXIT_OK


def _study_name(folder: Path) -> str:
    lock = folder / "recipe.json"
    if lock.is_file():
        return json.loads(lock.read_text())["name"]
    return folder.name


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from honing._core import ConfigError

    folder = Path(args.run_dir)
    journal = folder / "study.journal"
    results_file = folder / "results.json"
    url = None
    if results_file.is_file():
        url = (json.loads(results_file.read_text()).get("study") or {}).get("storage")
    if not journal.is_file() and not (url and url.startswith(("sqlite", "postgresql"))):
        raise ConfigError(f"invalid run folder {str(folder)!r}: no study storage found (study.journal)")
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise ConfigError("honing dashboard needs optuna-dashboard: pip install optuna-dashboard") from None
    from honing.tune import resolve_storage

    storage = resolve_storage(url if url and url.startswith(("sqlite", "postgresql")) else None, folder)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    run_server(storage.storage if hasattr(storage, "storage") else storage, host=args.host, port=args.port)
    return EXIT_OK


def _cmd_init(args: argparse.Namespace) -> int:
    from honing._core import ConfigError
    from honing.recipe import example_recipe

    path = Path(args.path)
    if path.exists() and not args.force:
        raise ConfigError(f"invalid path {str(path)!r}: the file exists; allowed: a new file, or --force")
    path.write_text(example_recipe())
    print(f"wrote {path}: run it with `honing run {path}`")
    return EXIT_OK


def _print_summary(folder: Path, results: dict[str, Any]) -> None:
    from honing.pipeline import baseline_lines, data_lines

    out = sys.stdout
    print(f"run {results['name']} ({results['task']}) -> {folder}", file=out)
    data = results.get("data") or {}
    if data.get("target"):
        for line in data_lines(data):
            print(f"  {line}", file=out)
    trials = results.get("trials") or {}
    if trials:
        counts = ", ".join(f"{v} {k}" for k, v in trials.items() if v)
        print(f"  trials:       {counts}", file=out)
        best = results["best_value"]
        best = f"{best:.6g}" if isinstance(best, float) else best  # 0.459479 (a list: several objectives)
        print(f"  best validation {results['metric']} (trial {results.get('best_trial')}, the chosen one): {best}",
              file=out)
        if results.get("tie_break"):
            print(f"    {results['tie_break']}", file=out)
        for k, v in (results.get("best_params") or {}).items():
            print(f"    {k} = {v}", file=out)
    _print_nas(results.get("nas"))
    print(f"  final model:  {results.get('final_model')}", file=out)
    fv = results.get("final_validation")
    if fv and fv.get("value") is not None:
        print(f"  final model's validation {fv['metric']}: {fv['value']:.4f} ({fv['note']})", file=out)
    metrics = dict(results.get("test_metrics") or {})
    primary = results.get("primary_metric")
    order = ([primary] if primary in metrics else []) + [k for k in metrics if k != primary]
    scaled = (data.get("scale_target") or {}).get("on")
    for k in order:  # the loss is the training loss: on standardized targets when they were standardized
        print(f"  test {k:<18s} {metrics[k]:.4f}" + ("  (on standardized targets)" if k == "loss" and scaled else ""),
              file=out)
    for line in baseline_lines(results):
        print(line, file=out)
    _print_ensemble(results.get("ensemble"), results.get("primary_metric"))
    _print_compression(results.get("compress"))
    _print_robustness(results.get("robustness"))
    _print_fairness(results.get("fairness"))
    spikes = results.get("spikes")
    if spikes:
        print(f"  spikes:       {spikes['time_steps']} time steps ({spikes['encoding']} input); spike rate "
              + ", ".join(f"{k} {v:.3f}" for k, v in spikes["spike_rate"].items())
              + f"; {spikes['synaptic_ops']:,.0f} synaptic ops per sample vs {spikes['ann_macs']:,.0f} MACs of the "
                "same network run once", file=out)
    t = results.get("timings") or {}
    if t:
        print("  time:         " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()), file=out)
    spent = results.get("energy") or {}
    if spent:
        methods = sorted({e["method"] for e in spent.values()})
        print("  energy:       " + ", ".join(f"{k.replace('_', ' ')} {e['joules']:.1f} J" for k, e in spent.items())
              + f" ({', '.join(methods)}" + ("; CPU time x a power per busy core, not a measurement)"
                                            if methods == ["estimated"] else ")"), file=out)


def _print_fairness(f: dict[str, Any] | None) -> None:
    if not f or f.get("skipped"):
        return
    from honing.pipeline._fairness import gap_words

    gap = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    for column, c in f["columns"].items():
        print(f"  fairness by {column} ({'an input' if f.get('model_inputs', True) else 'not an input'} of the model; "
              f"test rows): {gap_words(f, c)}")
        for g, r in c["groups"].items():
            if f.get("task") == "regression":
                print(f"    {g:<20s} rows {r['rows']:>6}  MAE {r['mae']:.4g}  mean error {r['mean_error']:+.4g}  "
                      f"mean prediction {r['mean_prediction']:.4g}  mean target {r['mean_target']:.4g}")
            else:
                print(f"    {g:<20s} rows {r['rows']:>6}  accuracy {gap(r['accuracy'])}  positive rate "
                      f"{gap(r['positive_rate'])}  TPR {gap(r['tpr'])}  FPR {gap(r['fpr'])}")


def _print_robustness(r: dict[str, Any] | None) -> None:
    if not r or r.get("skipped"):
        return
    eps = [f"{e:g}" for e in r["epsilons"]]
    print(f"  robustness ({r['rows']} test rows; {r['norm']} epsilon in {r['units']}):")
    print(f"    {'attack':<24s}" + "".join(f"{'eps ' + e:>12s}" for e in eps))
    print(f"    {'clean':<24s}" + "".join(f"{r['clean_accuracy']:>12.4f}" for _ in eps))
    for name, row in r["accuracy"].items():
        print(f"    {name + (' (black-box)' if name == 'square' else ''):<24s}" + "".join(f"{row[e]:>12.4f}" for e in eps))
    if len(r["accuracy"]) > 1:
        print(f"    {'robust (all attacks)':<24s}" + "".join(f"{r['robust_accuracy'][e]:>12.4f}" for e in eps))
    corr = r.get("corruptions")
    if corr:
        print(f"    corruptions (mean accuracy over severities 1-5): {corr['mean']:.4f}")
    failed = [c for c in r["checks"] if not c["passed"]]
    print(f"    sanity checks: {len(r['checks']) - len(failed)} of {len(r['checks'])} passed"
          + "".join(f"; FAILED {c['check']}: {c['detail']}" for c in failed))


def _print_trials(study: Any, limit: int) -> None:
    complete = [t for t in study.trials if t["state"] == "complete" and t.get("values")]
    reverse = study.directions[0] == "maximize"
    complete.sort(key=lambda t: t["values"][0], reverse=reverse)
    print(f"  study {study.study_name}: " + ", ".join(f"{v} {k}" for k, v in study.counts.items() if v))
    if not complete:
        return
    print(f"  {'trial':>5}  {'value':>10}  params")
    for t in complete[:limit]:
        params = ", ".join(f"{k}={v}" for k, v in t["params"].items())
        print(f"  {t['number']:>5}  {t['values'][0]:>10.4f}  {params}")


_COMMANDS = {
    "run": _cmd_run,
    "train": _cmd_train,
    "worker": _cmd_worker,
    "suggest": _cmd_suggest,
    "space": _cmd_space,
    "compress": _cmd_compress,
    "validate": _cmd_validate,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "robust": _cmd_robust,
    "serve": _cmd_serve,
    "drift": _cmd_drift,
    "refit": _cmd_refit,
    "rollback": _cmd_rollback,
    "log": _cmd_log,
    "show": _cmd_show,
    "dashboard": _cmd_dashboard,
    "init": _cmd_init,
}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
