"""JDRL's claim (paper 002), checked where the answer is known: trained on pairs whose sharp
target is zoomed and shifted, JDRL beats the same backbone trained with plain L1, scored
against the true aligned ground truth. Minutes of training: slow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_jdrl_beats_plain_l1_on_misaligned_pairs_against_the_aligned_truth(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "jdrl_misaligned.py"),
                           "--work", str(work)], capture_output=True, text=True, timeout=3600,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((work / "result.json").read_text())
    aligned = result["aligned"]
    assert aligned["jdrl"]["psnr"] > aligned["jdrl+l1"]["psnr"]
    # and the plain comparison against the misaligned targets is the misleading one: every
    # method scores lower there than against the truth
    for run in ("identity", "jdrl", "jdrl+l1"):
        assert result["original"][run]["psnr"] < aligned[run]["psnr"]
