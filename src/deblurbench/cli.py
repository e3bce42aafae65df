"""`deblurbench` command line: parses arguments and calls one engine function per verb.

Every verb exits non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deblurbench.config import load_params


def _params(args: argparse.Namespace):
    return load_params(args.params)


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from deblurbench.datasets.manifest import list_cards, manifest_path

    for card in list_cards():
        ready = "prepared" if manifest_path(card.name).exists() else "not prepared"
        splits = ", ".join(f"{k}={'?' if v is None else v}" for k, v in card.splits.items())
        print(f"{card.name:20s} v{card.version:5s} {card.bit_depth:2d}-bit  {splits:30s} {ready}")
    return 0


def cmd_datasets_prepare(args: argparse.Namespace) -> int:
    from deblurbench.datasets.manifest import prepare

    df = prepare(args.name, Path(args.raw) if args.raw else None)
    counts = df.groupby("split").size().to_dict()
    print(f"{args.name}: {len(df)} pairs {counts}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from deblurbench.datasets.synthetic import make_synthetic_defocus
    from deblurbench.paths import dataset_dir

    if args.kind != "defocus":
        raise ValueError(f"unknown synthetic kind {args.kind!r} (known: defocus)")
    out = dataset_dir(args.out) / "raw"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    recs = make_synthetic_defocus(out, _params(args).synth)
    print(f"{args.out}: rendered {len(recs)} scenes into {out}")
    return 0


def cmd_methods_list(args: argparse.Namespace) -> int:
    from deblurbench.methods.registry import discover

    for card in discover().values():
        train = "trainable" if card.trainable else "-"
        print(f"{card.name:20s} v{card.version:6s} {card.kind:10s} {card.device:4s} {train:9s} "
              f"{card.title}")
    return 0


def cmd_methods_run(args: argparse.Namespace) -> int:
    from deblurbench.methods.runner import run_method

    p = _params(args)
    rec = run_method(args.name, args.dataset, args.split, device=args.device or p.run.device,
                     output_bits=p.run.output_bits)
    if rec["status"] != "ok":
        print(f"error: {rec['error']}", file=sys.stderr)
        return 0 if args.allow_failure else 1
    print(f"{args.name} on {args.dataset}/{args.split}: {len(rec['images'])} images, ok")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from deblurbench.metrics.scorer import score_run

    p = _params(args)
    methods = args.method or p.run.methods
    datasets = args.dataset or p.datasets
    splits = args.split or p.run.splits
    db = args.db or p.score.db
    failed = 0
    for d in datasets:
        for s in splits:
            for m in methods:
                res = score_run(m, d, s, db, list(p.score.metrics), p.score.protocol,
                                metrics_dir=p.score.metrics_dir)
                means = "  ".join(f"{k}={v:.4f}" for k, v in res["means"].items())
                print(f"{res['run_id']}: {res['status']} ({res['n_images']} images) {means}")
                if res["status"] != "ok":
                    print(f"  {res['error']}", file=sys.stderr)
                    failed += 1
    return 1 if failed and not args.allow_failure else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from deblurbench.leaderboard.table import mean_table, print_tables, to_markdown

    tables = mean_table(args.db or _params(args).score.db)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(to_markdown(tables))
    if args.print or not args.out:
        print_tables(tables)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deblurbench", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    sub = parser.add_subparsers(dest="verb", required=True)

    ds = sub.add_parser("datasets", help="data set cards and manifests")
    dsub = ds.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="list data set cards").set_defaults(func=cmd_datasets_list)
    p = dsub.add_parser("prepare", help="parse a data set's raw layout into its manifest")
    p.add_argument("name")
    p.add_argument("--raw", help="raw folder (default: datasets/<name>/raw)")
    p.set_defaults(func=cmd_datasets_prepare)

    p = sub.add_parser("synth", help="make a synthetic data set (default: from skimage photos)")
    p.add_argument("kind", choices=["defocus"])
    p.add_argument("--out", required=True, help="data set name, e.g. synthetic-defocus")
    p.set_defaults(func=cmd_synth)

    me = sub.add_parser("methods", help="list and run methods")
    msub = me.add_subparsers(dest="action", required=True)
    msub.add_parser("list", help="list methods (imports no model code)").set_defaults(
        func=cmd_methods_list)
    p = msub.add_parser("run", help="restore a data set split with a method")
    p.add_argument("name")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: params run.device)")
    p.add_argument("--allow-failure", action="store_true",
                   help="record a crashing method as a failed run and exit 0")
    p.set_defaults(func=cmd_methods_run)

    p = sub.add_parser("score", help="score runs into the results database")
    p.add_argument("--method", action="append", help="method (repeatable; default: params)")
    p.add_argument("--dataset", action="append", help="data set (repeatable; default: params)")
    p.add_argument("--split", action="append", help="split (repeatable; default: params)")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.add_argument("--allow-failure", action="store_true", help="exit 0 when a run failed")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("leaderboard", help="show the leaderboard table")
    p.add_argument("--print", action="store_true", help="print the table in the terminal")
    p.add_argument("--out", help="also write it as markdown to this file")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.set_defaults(func=cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError, OSError) as exc:
        msg = str(exc).strip().splitlines()
        print(f"error: {msg[0] if msg else type(exc).__name__}", file=sys.stderr)
        for line in msg[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
