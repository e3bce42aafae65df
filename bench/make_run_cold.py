"""Time a cold `make run` stage by stage: the 15-minute budget of the README's "Training budgets".

    .venv/bin/python bench/make_run_cold.py --yes      # wipes what the pipeline made, reruns it
    .venv/bin/python bench/make_run_cold.py --log LOG  # only parse a saved `dvc repro` log

Cold means the venv present and nothing the pipeline makes: every output of the stages of
`dvc.yaml` (data sets, PBA annotations, checkpoints, outputs, metric files, results database)
and the DVC cache are removed first; `dvc repro` rebuilds them all. Each stage's wall time is the
gap between DVC's "Running stage" lines, so it includes the stage's process start and DVC's own
hashing. Figures are shown against a baseline measured in the same run: the `run@identity`
stage on the test split (a process that imports torch, copies 16 images and records them),
the cost of one pipeline step that does no work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"Running stage '([^']+)'")
GROUPS = (("train", ("train@", "train-extra@")), ("evaluate", ("evaluate@",)),
          ("cross", ("cross@",)), ("run", ("run@",)), ("score", ("score", "leaderboard")))


def wipe() -> list[str]:
    """Remove every output of the stages of dvc.yaml as DVC resolves them today, and DVC's
    cache; returns the outputs removed."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        outs = sorted({o.def_path for o in repo.index.outs})
    for rel in [*outs, ".dvc/cache", ".dvc/tmp"]:
        p = ROOT / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return outs


def run_repro(log: Path) -> float:
    """`dvc repro` with every output line stamped (seconds since start); returns the total."""
    env = dict(os.environ, PATH=f"{ROOT / '.venv/bin'}:{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1")
    t0 = time.monotonic()
    with log.open("w") as out, subprocess.Popen(
            [str(ROOT / ".venv/bin/dvc"), "repro"], cwd=ROOT, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(f"{time.monotonic() - t0:9.2f} {line}")
            if STAGE.search(line):
                print(f"{time.monotonic() - t0:7.1f} s  {line.strip()}", flush=True)
    if proc.returncode:
        sys.exit(f"dvc repro failed (exit {proc.returncode}); see {log}")
    return time.monotonic() - t0


def stage_times(log: Path, total: float | None = None) -> dict[str, float]:
    """{stage: seconds} from a stamped log; the last stage runs until ``total`` (or the last
    stamped line)."""
    starts: list[tuple[str, float]] = []
    last = 0.0
    for line in log.read_text().splitlines():
        stamp, _, rest = line.strip().partition(" ")
        try:
            t = float(stamp)
        except ValueError:
            continue
        if t < last:  # not a stamp: a line of a stage's own output that starts with a number
            continue
        last = t
        m = STAGE.search(rest)
        if m:
            starts.append((m.group(1), t))
    end = total if total is not None else last
    return {name: (starts[i + 1][1] if i + 1 < len(starts) else end) - t
            for i, (name, t) in enumerate(starts)}


def group(name: str) -> str:
    for g, prefixes in GROUPS:
        if name.startswith(prefixes):
            return g
    return "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yes", action="store_true", help="wipe what the pipeline made and rerun")
    ap.add_argument("--log", type=Path, help="parse this stamped log instead of running")
    args = ap.parse_args()
    work = ROOT / "bench/work"
    work.mkdir(parents=True, exist_ok=True)
    if args.log is None:
        if not args.yes:
            sys.exit("this removes every data set, checkpoint and output the pipeline made; "
                     "pass --yes")
        print(f"removed {len(wipe())} outputs of dvc.yaml's stages and the DVC cache")
        log = work / "make_run_cold.log"
        total = run_repro(log)
    else:
        log, total = args.log, None
    times = stage_times(log, total)
    total = total if total is not None else sum(times.values())
    base_name = next((n for n in times if n.startswith("run@identity")), None)
    base = times.get(base_name, float("nan")) if base_name else float("nan")
    print(f"\ncold dvc repro: {total:.0f} s ({total / 60:.1f} min) on {os.cpu_count()} cores; "
          f"baseline {base_name}: {base:.1f} s\n")
    print(f"{'stage':48s} {'s':>7s} {'x baseline':>10s} {'share':>6s}")
    for name, s in times.items():
        print(f"{name:48s} {s:7.1f} {s / base:10.1f} {s / total:6.1%}")
    sums: dict[str, float] = {}
    for name, s in times.items():
        sums[group(name)] = sums.get(group(name), 0.0) + s
    print()
    for g, s in sums.items():
        print(f"{g:48s} {s:7.1f} {s / base:10.1f} {s / total:6.1%}")
    (work / "make_run_cold.json").write_text(json.dumps(
        {"total_s": total, "cores": os.cpu_count(), "baseline": base_name,
         "baseline_s": base, "stages_s": times, "groups_s": sums}, indent=1))


if __name__ == "__main__":
    main()
