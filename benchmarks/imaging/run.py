"""Preparing a build context: cold (pip downloads the wheels) and warm (the wheel cache answers).

    .venv/bin/python benchmarks/imaging/run.py

No Django and no engine: deployments.imaging.prepare_context alone, for a `python` model that needs
numpy, five times warm. Prints a Markdown table; the target is a warm preparation under 1 s, so a new
version with the same requirements spends its build time on the model layer only.
"""

import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from deployments.imaging.context import BuildSpec, prepare_context
from deployments.imaging.wheels import wheel_cache_key

MODEL = "class Model:\n    def predict(self, inputs):\n        return {'doubled': inputs['x'] * 2}\n"
WARM_RUNS = 5


def spec(artifact: Path, build_id: int) -> BuildSpec:
    return BuildSpec(
        team="bench",
        model="doubler",
        version=build_id,
        framework="python",
        artifact_path=artifact,
        artifact_name="model.py",
        artifact_sha256=hashlib.sha256(artifact.read_bytes()).hexdigest(),
        requirements=("numpy",),
        signature={},
        source_commit="",
        build_id=build_id,
        base_image="python:3.11-slim",
    )


def timed(artifact: Path, work: Path, cache: Path, build_id: int) -> float:
    started = time.perf_counter()
    prepare_context(spec(artifact, build_id), work / str(build_id), wheel_cache=cache, log=lambda _: None)
    return time.perf_counter() - started


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="slipway-bench-imaging-"))
    try:
        artifact = work / "model.py"
        artifact.write_text(MODEL)
        cache = work / "wheels"
        cold = timed(artifact, work, cache, 1)
        warm = sorted(timed(artifact, work, cache, n) for n in range(2, 2 + WARM_RUNS))
        key = wheel_cache_key("python", ("numpy",))[:12]
        print(f"## Build context of a python model needing numpy (wheel cache key {key})\n")
        print("| preparation | time |\n|---|---|")
        print(f"| cold (pip downloads) | {cold:.2f} s |")
        print(f"| warm, median of {WARM_RUNS} | {warm[len(warm) // 2]:.3f} s |")
        print(f"| warm, slowest | {warm[-1]:.3f} s |")
        print(f"\nTarget: warm under 1 s: **{'met' if warm[-1] < 1 else 'missed'}**.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
