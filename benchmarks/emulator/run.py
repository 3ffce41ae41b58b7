"""The emulated Kubernetes API the tests run against: does a watch end at its timeout, and how fast it answers.

    .venv/bin/python benchmarks/emulator/run.py

A watch with timeoutSeconds=1 must stay open for about a second and then end (a client that is cut off
early reconnects in a loop; one that is never cut off hangs). Prints a Markdown table.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from kubernetes import client, config, watch

from tests.support.kube.emulator import KubeEmulator

RUNS = 10


def main() -> None:
    emulator = KubeEmulator()
    emulator.start()
    try:
        kubeconfig = emulator.write_kubeconfig(Path(tempfile.mkdtemp(prefix="slipway-bench-kube-")) / "config")
        core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        core.create_namespace({"metadata": {"name": "bench"}})
        lists, watches = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            core.list_namespaced_config_map("bench")
            lists.append(time.perf_counter() - started)
            start = core.list_namespaced_config_map("bench").metadata.resource_version
            started = time.perf_counter()
            for _event in watch.Watch().stream(
                core.list_namespaced_config_map, "bench", resource_version=start, timeout_seconds=1
            ):
                pass
            watches.append(time.perf_counter() - started)
        print(f"## Emulated Kubernetes API ({RUNS} runs)\n")
        print("| measure | median | min | max |\n|---|---|---|---|")
        print(
            f"| list configmaps | {statistics.median(lists) * 1000:.1f} ms | {min(lists) * 1000:.1f} ms "
            f"| {max(lists) * 1000:.1f} ms |"
        )
        print(
            f"| watch, timeoutSeconds=1, until it ends | {statistics.median(watches):.2f} s | {min(watches):.2f} s "
            f"| {max(watches):.2f} s |"
        )
        honoured = all(0.9 < seconds < 3 for seconds in watches)
        print(f"\nTarget: every watch ends between 0.9 s and 3 s: **{'met' if honoured else 'missed'}**.")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
