"""`deblurbench` command line: parses arguments and calls one engine function per verb.

Every verb exits non-zero with a one-line reason on bad input. The file is long (about 550
lines) because it holds the whole argparse tree, 30-odd verbs with their options and help; each
handler is a few lines that parse, call one engine function and print, and none holds logic.
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


def cmd_datasets_fetch(args: argparse.Namespace) -> int:
    from deblurbench.datasets.fetch import fetch, limits_from

    limits = limits_from(_params(args).real, args.max_download_gb, args.max_unpacked_gb)
    res = fetch(args.name, args.from_path, limits, force=args.force, retries=args.retries)
    print(f"{args.name}: {res.files} files in {res.raw} from {res.source} "
          f"(sha256 {res.sha256 or '-'}: {res.verified})")
    return 0


def cmd_datasets_align(args: argparse.Namespace) -> int:
    from deblurbench.datasets.align import align_dataset, params_from

    st = align_dataset(args.name, params_from(_params(args).real, args.flow), args.split)
    if st.empty:
        print(f"{args.name}: no ground truth, nothing to align")
        return 0
    print(f"{args.name}: aligned {len(st)} pairs; residual flow mean {st['flow_mean'].mean():.2f}"
          f" px, p95 {st['flow_p95'].mean():.2f} px, masked {st['masked_fraction'].mean():.3f}")
    return 0


def cmd_datasets_derive(args: argparse.Namespace) -> int:
    from deblurbench.datasets.derive import derive_resized

    raw = derive_resized(args.variant)
    print(f"{args.variant}: written to {raw} with card datasets/{args.variant}.yaml; next: "
          f"deblurbench datasets prepare {args.variant}")
    return 0


def cmd_datasets_report(args: argparse.Namespace) -> int:
    from deblurbench.quality_report import report

    print(report(args.name, top_k=args.top, pba=not args.no_pba,
                 pba_section=_params(args).pba))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from deblurbench.annotate.synth_dataset import KINDS
    from deblurbench.datasets.synthetic import make_synthetic_defocus
    from deblurbench.paths import dataset_dir

    if args.kind == "misalign":
        return _synth_misalign(args)
    if args.kind == "target":
        return _synth_target(args)
    if args.kind == "copy":  # params.yaml's copies entry named --out (the dvc stage copy)
        spec = next((c for c in _params(args).copies if c.name == args.out), None)
        if spec is None:
            raise ValueError(f"params copies has no entry named {args.out!r}")
        args.kind, args.from_dataset = spec.kind, spec.source
        args.kernel_size, args.severity, args.noise = spec.kernel_size, spec.severity, spec.noise
    if args.kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {args.kind!r} (known: {', '.join(KINDS)}, "
                         f"misalign)")
    if args.from_dataset is not None:
        from deblurbench.annotate.synth_dataset import make_from_dataset

        seed = _params(args).synth.seed if args.seed is None else args.seed
        recs = make_from_dataset(args.kind, args.from_dataset, args.out, seed=seed,
                                 severity=args.severity, kernel_size=args.kernel_size,
                                 noise=args.noise)
        print(f"{args.out}: blurred {len(recs)} images of {args.from_dataset} ({args.kind}); "
              f"card and manifest written, ready to run and score")
        return 0
    if args.kind != "defocus":
        raise ValueError(f"synth {args.kind} needs --from DATASET (only defocus renders the "
                         f"embedded photos)")
    out = dataset_dir(args.out) / "raw"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    recs = make_synthetic_defocus(out, _params(args).synth)
    print(f"{args.out}: rendered {len(recs)} scenes into {out}")
    return 0


def _synth_target(args: argparse.Namespace) -> int:
    """Blurry-only scenes of the test photos: the embedded stand-in for PixelDP (no GT)."""
    import shutil

    from deblurbench.datasets.synthetic_target import make_synthetic_target
    from deblurbench.paths import dataset_dir

    out = dataset_dir(args.out) / "raw"
    shutil.rmtree(out, ignore_errors=True)
    recs = make_synthetic_target(out, _params(args).synth)
    print(f"{args.out}: rendered {len(recs)} blurry-only scenes into {out} (no ground truth)")
    return 0


def _synth_misalign(args: argparse.Namespace) -> int:
    """A misaligned copy of a synthetic set's raw folder (needs --from), true alignment kept."""
    from deblurbench.datasets.misalign import make_misaligned
    from deblurbench.paths import dataset_dir

    if args.from_dataset is None:
        raise ValueError("synth misalign needs --from DATASET (a synthetic data set, e.g. "
                         "synthetic-defocus)")
    p = _params(args).synth
    seed = p.seed if args.seed is None else args.seed
    recs = make_misaligned(dataset_dir(args.from_dataset) / "raw", dataset_dir(args.out) / "raw",
                           seed=seed, zoom=p.misalign_zoom, shift_px=p.misalign_shift_px)
    print(f"{args.out}: misaligned {len(recs)} sharp images of {args.from_dataset} (zoom up to "
          f"{p.misalign_zoom:.1%}, shift up to {p.misalign_shift_px} px); true alignment in "
          f"{dataset_dir(args.out) / 'raw' / 'alignment.json'}")
    return 0


def cmd_annotate_pba(args: argparse.Namespace) -> int:
    from deblurbench.annotate.run import annotate_target

    summary = annotate_target(args.target, Path(args.out), args.which, _params(args).pba)
    for kind in ("blurry", "sharp"):
        for split, s in summary.get(kind, {}).items():
            shares = " ".join(f"{k}={v:.3f}" for k, v in s["share"].items())
            print(f"{summary['source']} {kind}/{split}: {s['images']} images; {shares}")
    print(f"wrote {args.out}/summary.json")
    return 0


def cmd_methods_list(args: argparse.Namespace) -> int:
    from deblurbench.methods.registry import discover

    for card in discover().values():
        train = "trainable" if card.trainable else "-"
        print(f"{card.name:20s} v{card.version:6s} {card.kind:10s} {card.device:4s} {train:9s} "
              f"{card.title}")
    return 0


def _small(config: str) -> bool | None:
    """``--config``: None (auto: small on a CPU, paper on a GPU), or whether small params."""
    return None if config == "auto" else config == "small"


def cmd_methods_run(args: argparse.Namespace) -> int:
    from deblurbench.methods.runner import run_method

    p = _params(args)
    rec = run_method(args.name, args.dataset, args.split, device=args.device or p.run.device,
                     small=_small(args.config or p.run.config),
                     output_bits=p.run.output_bits, tile_size=args.tile_size,
                     tile_overlap=args.tile_overlap, precision=args.precision,
                     seed=p.run.seed if args.seed is None else args.seed, timeout=args.timeout,
                     trained_on=args.trained_on, variant=args.variant,
                     overrides=p.train.overrides.get(args.name))
    if rec["status"] != "ok":
        print(f"error: {rec['error']}", file=sys.stderr)
        return 0 if args.allow_failure else 1
    c = rec["cost"]
    print(f"{args.name} on {args.dataset}/{args.split}: {len(rec['images'])} images, ok "
          f"({c['latency_ms_per_mp']:.1f} ms/MP, {c['params']} params)")
    return 0


def cmd_methods_curve(args: argparse.Namespace) -> int:
    from deblurbench.methods.checkpoint import checkpoints_dir
    from deblurbench.methods.curves import identity_val_psnr, plot_curve

    logs = {}
    for c in args.config or ["small"]:
        log = checkpoints_dir() / args.name / args.dataset / f"{c}.json"
        if not log.is_file():
            raise FileNotFoundError(f"{log}: no training log; run `deblurbench methods train "
                                    f"{args.name} --dataset {args.dataset}` first")
        logs[c] = log
    try:
        floor = identity_val_psnr(args.dataset)
    except (ValueError, ZeroDivisionError):
        floor = None
    out = plot_curve(logs, Path(args.out), floor, f"{args.name} on {args.dataset}")
    print(f"wrote {out}")
    return 0


def cmd_methods_train(args: argparse.Namespace) -> int:
    from deblurbench.methods.train import train_method

    t = _params(args).train
    rec = train_method(args.name, args.dataset, split=args.split or t.split,
                       device=args.device or t.device, small=_small(args.config or t.config),
                       seed=t.seed if args.seed is None else args.seed,
                       max_seconds=args.max_seconds or t.max_seconds, force=args.force,
                       retrain_stale=args.retrain_stale, variant=args.variant,
                       overrides=t.overrides.get(args.name))
    if rec["status"] != "finished":
        print(f"error: {rec['error']}", file=sys.stderr)
        return 3 if rec["status"] == "interrupted" else 1
    note = f" ({rec['note']})" if rec.get("note") else ""
    print(f"{args.name} trained on {args.dataset}/{rec['split']} ({rec['config']}): "
          f"step {rec['step']}, checkpoint {rec['checkpoint']}{note}")
    return 0


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return n


def cmd_score(args: argparse.Namespace) -> int:
    from deblurbench.metrics.scorer import score_all

    told: set[str] = set()

    def show(res: dict) -> None:
        means = "  ".join(f"{k}={v:.4f}" for k, v in res["means"].items())
        again = ", scores reused: same outputs and specs" if res.get("reused") else ""
        print(f"{res['run_id']}: {res['status']} ({res['n_images']} images{again}) {means}")
        # Each missing-weights reason once per call, not once per run.
        unavailable = res.get("unavailable", {})
        for k in sorted(unavailable.keys() - told):
            print(f"  {k}: {unavailable[k]}", file=sys.stderr)
        if unavailable.keys() & told:
            print(f"  unavailable as above: {', '.join(sorted(unavailable.keys() & told))}",
                  file=sys.stderr)
        told.update(unavailable)
        if res["status"] != "ok":
            print(f"  {res['error']}", file=sys.stderr)

    done = score_all(_params(args), methods=args.method, datasets=args.dataset,
                     splits=args.split, metrics=args.metric, protocol=args.protocol,
                     reference=args.reference, regions_on=args.regions, device=args.device,
                     db_path=args.db, batch_size=args.batch_size, on_result=show)
    for rid in done.get("dropped", []):
        print(f"{rid}: dropped from the board (no longer in the pipeline, outputs folder gone)")
    if done["reported"] is not None:
        n, path = done["reported"]
        print(f"reported: {n} rows loaded from {path}")
    failed = sum(r["status"] != "ok" for r in done["results"])
    return 1 if failed and not args.allow_failure else 0


def cmd_weights_status(args: argparse.Namespace) -> int:
    from deblurbench.weights import status  # metrics' and method cards' files alike

    for r in status():
        mark = "present" if r["present"] else "MISSING"
        print(f"{r['metric']:11s} {mark:8s} {r['file']:48s} {r['looked_in']}")
    return 0


def cmd_weights_download(args: argparse.Namespace) -> int:
    from deblurbench.weights import download_missing

    done = download_missing(args.metric or None, args.mirror)
    for name, what in done:
        print(f"{name} {what}")
    if not done:
        print("nothing to download: every weight file asked for is present")
    return 1 if any(what.startswith("failed") for _, what in done) else 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from deblurbench.weights import import_dir

    for name, dest in import_dir(args.dir):
        print(f"imported {name} -> {dest}")
    return 0


def _app_path() -> Path:
    """leaderboard/app.py of this project, else of the source tree the engine runs from."""
    from deblurbench.paths import project_root

    for base in (project_root(), Path(__file__).resolve().parents[2]):
        if (base / "leaderboard" / "app.py").is_file():
            return base / "leaderboard" / "app.py"
    raise FileNotFoundError("leaderboard/app.py not found in the project or the source tree")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from deblurbench.leaderboard.report import mean_table, print_tables, to_markdown

    if args.app:
        import os

        if args.db:
            os.environ["DEBLURBENCH_DB"] = args.db
        streamlit = Path(sys.executable).parent / "streamlit"
        argv = [str(streamlit), "run", str(_app_path()), "--server.headless", "true",
                "--server.port", str(args.port), "--server.address", args.address,
                "--browser.gatherUsageStats", "false"]
        print(f"leaderboard app on http://{args.address}:{args.port} (Ctrl-C stops it)",
              flush=True)
        os.execv(argv[0], argv)  # the server replaces this process: signals reach it directly

    tables = mean_table(args.db or _params(args).score.db)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(to_markdown(tables))
    if args.print or not args.out:
        print_tables(tables)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from deblurbench.leaderboard.review import build_review, launch

    sc = _params(args).score
    board = sc.protocol if sc.reference == "original" else f"{sc.protocol}+{sc.reference}"
    ds = build_review(args.dataset, args.split, args.db or sc.db, worst_k=args.worst_k,
                      protocol=board)
    print(f"review dataset {ds.name!r}: {len(ds)} groups, slices {ds.group_slices}, "
          f"saved views {ds.list_saved_views()}")
    if not args.no_launch:
        launch(ds, port=args.port)
    return 0


def cmd_submit_results(args: argparse.Namespace) -> int:
    from deblurbench.submit.results import submit_results

    p = _params(args)
    res = submit_results(args.path, args.dataset, args.split, args.method, args.card,
                         args.db or p.score.db, list(p.score.metrics), p.score.protocol)
    means = "  ".join(f"{k}={v:.4f}" for k, v in res["means"].items())
    print(f"{res['run_id']}: submitted, {res['n_images']} images scored  {means}")
    return 0


def cmd_submit_method(args: argparse.Namespace) -> int:
    from deblurbench.submit.method import submit_method

    res = submit_method(args.folder, args.params)
    sizes = ", ".join(f"{t['shape'][1]}x{t['shape'][0]}" for t in res["tried"])
    note = "added to params.yaml run.methods" if res["params_updated"] else "already in params"
    print(f"{res['name']}: contract ok, ran on tiny images ({sizes}), registered at "
          f"{res['target']}; {note}; `dvc repro` now runs it")
    return 0


def cmd_submit_reported(args: argparse.Namespace) -> int:
    from deblurbench.submit.reported import load_reported

    n = load_reported(args.csv, args.db or _params(args).score.db)
    print(f"reported: {n} rows loaded from {args.csv}")
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
    p = dsub.add_parser("fetch", help="download (resumable), verify and unpack a data set")
    p.add_argument("name")
    p.add_argument("--from", dest="from_path", help="import an archive or folder you already have")
    p.add_argument("--force", action="store_true", help="replace an existing raw folder")
    p.add_argument("--retries", type=int, default=2, help="resume attempts (default: 2)")
    p.add_argument("--max-download-gb", type=float, help="default: params real.max_download_gb")
    p.add_argument("--max-unpacked-gb", type=float, help="default: params real.max_unpacked_gb")
    p.set_defaults(func=cmd_datasets_fetch)
    p = dsub.add_parser("align", help="align sharp to blurry images (aligned GT + mask variant)")
    p.add_argument("name")
    p.add_argument("--split", action="append", help="split (repeatable; default: all)")
    p.add_argument("--flow", choices=["dis", "farneback", "none"], help="default: params")
    p.set_defaults(func=cmd_datasets_align)
    p = dsub.add_parser("derive", help="make a card's resize variant a data set of its own")
    p.add_argument("variant", help="variant name from a card, e.g. realdof-1120x1680")
    p.set_defaults(func=cmd_datasets_derive)
    p = dsub.add_parser("report", help="data-quality report (markdown + figures)")
    p.add_argument("name")
    p.add_argument("--top", type=int, default=5, help="worst pairs listed per measure")
    p.add_argument("--no-pba", action="store_true", help="skip PBA blur levels")
    p.set_defaults(func=cmd_datasets_report)

    p = sub.add_parser("synth", help="make a synthetic data set (default: from skimage photos)")
    p.add_argument("kind", help="defocus (alone: the embedded photos); with --from also "
                   "defocus-gaussian, defocus-catseye, motion, motion-nonuniform, "
                   "corrupt-{defocus,gaussian,glass,motion,zoom}, and misalign (a synthetic "
                   "set's sharp targets zoomed and shifted, true alignment kept); target (alone: other scenes "
                   "of the test photos, blurry only, no ground truth); copy (the entry of params "
                   "copies named --out)")
    p.add_argument("--out", required=True, help="data set name, e.g. synthetic-defocus")
    p.add_argument("--from", dest="from_dataset", metavar="DATASET",
                   help="blur the sharp images of this prepared data set into a new one")
    p.add_argument("--seed", type=int, help="default: params synth.seed")
    p.add_argument("--severity", type=int, default=3, choices=range(1, 6),
                   help="corrupt-* severity 1..5 (default: %(default)s)")
    p.add_argument("--kernel-size", type=int, default=31, help="motion kernel size (odd px)")
    p.add_argument("--noise", type=float, default=0.0, help="defocus read-noise sigma")
    p.set_defaults(func=cmd_synth)

    an = sub.add_parser("annotate", help="blur-level annotations (PBA)")
    asub = an.add_subparsers(dest="action", required=True)
    p = asub.add_parser("pba", help="Patch Blur Annotator levels of an image or a data set")
    p.add_argument("target", metavar="IMAGE_OR_DATASET")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--which", choices=["blurry", "sharp", "both"], default="blurry",
                   help="data set images to annotate (default: %(default)s)")
    p.set_defaults(func=cmd_annotate_pba)

    me = sub.add_parser("methods", help="list, train and run methods")
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
    p.add_argument("--config", choices=["auto", "small", "paper"],
                   help="params: small (CPU-sized) or paper (default: params run.config; auto = "
                        "small on CPU, paper on a GPU)")
    p.add_argument("--tile-size", type=int, help="tile images larger than this (pixels)")
    p.add_argument("--tile-overlap", type=int, help="overlap of neighbouring tiles (pixels)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast on a GPU (default: bf16 where the card allows amp)")
    p.add_argument("--seed", type=int, help="torch seed before each image (default: params)")
    p.add_argument("--timeout", type=float, help="seconds allowed per image")
    p.add_argument("--trained-on", help="use the checkpoint trained on this data set "
                                        "(default: --dataset); the run is its own board row, "
                                        "outputs/<method>~<trained-on>/...")
    p.add_argument("--variant", help="a variant of the card (its parameter overrides)")
    p.set_defaults(func=cmd_methods_run)
    p = msub.add_parser("curve", help="plot training loss and validation PSNR of trainings")
    p.add_argument("name")
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", action="append", help="small, paper, small+VARIANT, ... "
                                                     "(repeatable; default: small)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=cmd_methods_curve)
    p = msub.add_parser("train", help="train (or resume training) a trainable method")
    p.add_argument("name")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", help="split to train on (default: params train.split)")
    p.add_argument("--device", help="auto, cpu, cuda (default: params train.device)")
    p.add_argument("--config", choices=["auto", "small", "paper"],
                   help="small or paper params (default: params train.config)")
    p.add_argument("--seed", type=int, help="seed (default: params train.seed)")
    p.add_argument("--max-seconds", type=float,
                   help="stop after this long, resumably (exit 3); rerun to resume")
    p.add_argument("--force", action="store_true",
                   help="train from scratch even if a checkpoint exists")
    p.add_argument("--variant", help="a variant of the card (its parameter overrides)")
    p.add_argument("--retrain-stale", action="store_true",
                   help="resume an unfinished checkpoint made with the same settings, else "
                        "train from scratch (what the DVC stage runs)")
    p.set_defaults(func=cmd_methods_train)

    p = sub.add_parser("score", help="score runs into the results database")
    p.add_argument("--method", action="append", help="method (repeatable; default: params)")
    p.add_argument("--dataset", action="append", help="data set (repeatable; default: params)")
    p.add_argument("--split", action="append", help="split (repeatable; default: params)")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.add_argument("--allow-failure", action="store_true", help="exit 0 when a run failed")
    p.add_argument("--metric", action="append", help="metric (repeatable; default: params)")
    p.add_argument("--protocol", choices=["defocus", "matlab"], help="default: params")
    p.add_argument("--reference", choices=["original", "aligned"], help="default: params")
    p.add_argument("--regions", action=argparse.BooleanOptionalAction, default=None,
                   help="also score per PBA blur level (default: params score.regions)")
    p.add_argument("--device", help="device for learned metrics (default: params)")
    p.add_argument("--batch-size", type=_batch_size, help="same-size images per forward pass "
                   "of batchable metrics, or auto (default: params score.batch_size)")
    p.set_defaults(func=cmd_score)

    w = sub.add_parser("weights", help="weight files of learned metrics")
    wsub = w.add_subparsers(dest="action", required=True)
    wsub.add_parser("status", help="list each metric's files, where, and whether present"
                    ).set_defaults(func=cmd_weights_status)
    p = wsub.add_parser("download", help="fetch missing weight files (needs internet or a "
                        "mirror), checked like imports")
    p.add_argument("metric", nargs="*", help="metrics whose files to fetch (default: all)")
    p.add_argument("--mirror", help="base URL serving the files by name (a team's own copy)")
    p.set_defaults(func=cmd_weights_download)
    p = wsub.add_parser("import", help="copy user-provided weight files into place")
    p.add_argument("dir", help="folder holding the files (names as `weights status` lists)")
    p.set_defaults(func=cmd_weights_import)

    p = sub.add_parser("leaderboard", help="show the leaderboard table")
    p.add_argument("--print", action="store_true", help="print the table in the terminal")
    p.add_argument("--out", help="also write it as markdown to this file")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.add_argument("--app", action="store_true", help="serve the Streamlit leaderboard instead")
    p.add_argument("--port", type=int, default=8501, help="app port (default: %(default)s)")
    p.add_argument("--address", default="127.0.0.1", help="app address (default: %(default)s)")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("review", help="build (and open) the FiftyOne failure-case review")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.add_argument("--worst-k", type=int, default=5, help="tag the k worst samples per method")
    p.add_argument("--no-launch", action="store_true", help="only build the FiftyOne dataset")
    p.add_argument("--port", type=int, default=5151, help="FiftyOne App port")
    p.set_defaults(func=cmd_review)

    su = sub.add_parser("submit", help="submit results, a method, or the papers' numbers")
    ssub = su.add_subparsers(dest="action", required=True)
    p = ssub.add_parser("results", help="score a folder or zip of restored <image_id>.png")
    p.add_argument("path", help="folder or .zip of <image_id>.png for the whole split")
    p.add_argument("--dataset", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--method", required=True, help="name the results appear under")
    p.add_argument("--card", help="method card YAML (name, paper, description, submitter)")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.set_defaults(func=cmd_submit_results)
    p = ssub.add_parser("method", help="validate, try and register a method folder")
    p.add_argument("folder", help="folder with method.yaml and its code")
    p.set_defaults(func=cmd_submit_method)
    p = ssub.add_parser("reported", help="load the papers' reported numbers into the database")
    p.add_argument("csv", nargs="?", default="leaderboard/reported.csv")
    p.add_argument("--db", help="results database (default: params score.db)")
    p.set_defaults(func=cmd_submit_reported)
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
