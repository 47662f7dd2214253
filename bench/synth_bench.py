"""`cdk synth` of the full app against a bare aws_eks_v2 cluster app, alternating, median of RUNS each."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CDK = REPO / "node_modules" / ".bin" / "cdk"
RUNS = int(os.environ.get("BENCH_RUNS", "7"))
TARGET_RATIO = 1.25


def synth(app: str | None) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(CDK), "synth", "--no-notices", "--quiet", "-o", out]
        if app:
            cmd += ["--app", app]
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> int:
    env_python = sys.executable
    full, bare = [], []
    synth(None)  # warm the file cache once, unmeasured
    for _ in range(RUNS):
        full.append(synth(None))
        bare.append(synth(f"{env_python} bench/bare_eks_app.py"))
    f, b = statistics.median(full), statistics.median(bare)
    ratio = f / b
    print(f"cdk synth, median of {RUNS} alternating runs")
    print(f"  full app (2 stacks) : {f:6.2f} s   runs {', '.join(f'{x:.2f}' for x in full)}")
    print(f"  bare aws_eks_v2 app : {b:6.2f} s   runs {', '.join(f'{x:.2f}' for x in bare)}")
    print(f"  ratio               : {ratio:6.2f}   (target <= {TARGET_RATIO})")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
