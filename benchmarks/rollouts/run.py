"""Rollouts to Kubernetes against the emulated API: latency at both ends, and API requests per rollout.

    REDIS_URL=redis://127.0.0.1:6379/<a db of your own> .venv/bin/python benchmarks/rollouts/run.py

For 1 and for 20 rollouts at once (each of another model, into one namespace), it measures:
  * request -> first apply: from the API request that asks for the rollout (POST /api/v1/rollouts/)
    to the emulated API server answering the first server-side apply of its Deployment;
  * cluster available -> shown succeeded: from the moment the API server stores the Deployment complete
    (observed, every replica updated, ready and available: the earliest any watch could see it) to the
    rollout's row reading "succeeded" (what the API and pages show from then on);
  * the API requests one rollout makes (everything but the emulated controllers'),
once as the platform runs (following the rollout with watches), once with watches refused (it polls).

Rollouts run as the platform runs them: queued on Redis, taken by a rollouts worker of its own (the
`rollouts` role: `celery worker -Q rollouts --pool threads --concurrency 20`), so the figures include
the time in the queue. Loopback only; it stops by itself.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tempfile import mkdtemp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import ROOT, django_ready, percentile

sys.path.insert(0, str(ROOT))
INTERNAL = ("kube-controller-manager/",)  # the emulated controllers' requests are not the platform's
# concurrency: rounds (so 10 and 40 samples); BENCH_ROUNDS="20:1" for a quick look at one of them
ROUNDS = {
    int(at_once): int(rounds)
    for at_once, rounds in (pair.split(":") for pair in os.environ.get("BENCH_ROUNDS", "1:10,20:2").split(","))
}
MODES = os.environ.get("BENCH_MODES", "watch,poll").split(",")
WORKER_THREADS = 20  # the rollouts role's default (platform/entrypoint.sh)


def serve_cluster(conn, workdir: str) -> None:
    """In a process of its own: the emulated API server and controllers, so that the platform's threads
    and the cluster's do not share one interpreter lock. Answers the parent's commands over `conn`."""
    from tests.support.kube.controller import DeploymentController
    from tests.support.kube.emulator import KubeEmulator

    with KubeEmulator() as emulator:
        emulator.requests = deque(maxlen=500_000)
        # When the API server stores a Deployment complete: the earliest moment any client could see it.
        available_at: dict[str, float] = {}
        commit = emulator.core._commit

        def noting_completion(rtype, obj, kind, old):
            stored = commit(rtype, obj, kind, old)
            if rtype.kind == "Deployment" and kind == "MODIFIED" and _complete(stored):
                rollout = stored["spec"]["template"]["metadata"]["labels"].get("slipway.io/deployment-id", "")
                available_at.setdefault(rollout, time.time())
            return stored

        emulator.core._commit = noting_completion
        kubeconfig = emulator.write_kubeconfig(Path(workdir) / "config")
        with DeploymentController(kubeconfig, log_sink=emulator.set_pod_log) as controller:
            conn.send(str(kubeconfig))
            while True:
                command, *args = conn.recv()
                if command == "deny":
                    emulator.deny(args[0], args[1], namespace=args[2])
                    conn.send(None)
                elif command == "requests":
                    conn.send(
                        [
                            (r.method, r.path, r.content_type, r.user_agent, r.at, r.query.get("watch") == "true")
                            for r in emulator.requests
                        ]
                    )
                elif command == "available":
                    with emulator.core.lock:
                        conn.send(dict(available_at))
                elif command == "cpu":
                    times = os.times()
                    conn.send(times.user + times.system)
                elif command == "errors":
                    conn.send(list(controller.errors))
                else:
                    conn.send(None)
                    return


class Cluster:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve_cluster, args=(child, mkdtemp(prefix="slipway-bench-")), daemon=True
        )
        self.process.start()
        self.kubeconfig = Path(self.conn.recv())

    def ask(self, *command):
        self.conn.send(command)
        return self.conn.recv()

    def close(self) -> None:
        self.ask("stop")
        self.process.join(timeout=10)


class RolloutWorker:
    """The platform's rollouts worker, on this benchmark's database and Redis."""

    def __init__(self, log_path: Path) -> None:
        from django.conf import settings

        self.log_path = log_path
        db = settings.DATABASES["default"]
        env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--pool", "threads",
             "--concurrency", str(WORKER_THREADS), "--queues", settings.ROLLOUT_QUEUE,
             "--hostname", f"bench-rollouts-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"ready." not in log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the rollouts worker did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        self.log.close()


def _complete(deployment: dict) -> bool:
    spec, status, meta = deployment["spec"], deployment.get("status") or {}, deployment["metadata"]
    wanted = spec.get("replicas", 1)
    counts = [status.get(key) or 0 for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")]
    return (status.get("observedGeneration") or 0) >= meta.get("generation", 0) and all(c == wanted for c in counts)


def run(cluster, environment, user, models, concurrency: int, round_number: int) -> list[dict]:
    from django.db import connection
    from rest_framework.test import APIClient

    from deployments.models import Rollout, RolloutState
    from deployments.services.environments import identity_for
    from tests.support.factories import VersionFactory, succeeded_build

    versions = [VersionFactory(model=model, number=round_number) for model in models[:concurrency]]
    for version in versions:
        succeeded_build(version, digest_char="abcdef"[round_number % 6])
    start = threading.Barrier(concurrency)

    def one(version) -> dict:
        client = APIClient()
        client.force_authenticate(user=user)
        start.wait()
        requested = time.time()
        answer = client.post("/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json")
        answered = time.time()
        assert answer.status_code == 201, answer.content
        rollout = Rollout.objects.get(pk=answer.json()["id"])
        connection.close()
        return {"rollout": rollout, "requested": requested, "answered": answered}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, versions))
    asked = [result["rollout"].pk for result in results]
    deadline = time.monotonic() + 300
    while Rollout.objects.filter(pk__in=asked, state__in=RolloutState.final()).count() < len(asked):
        assert time.monotonic() < deadline, "the rollouts did not finish within 300 s"
        time.sleep(0.1)
    records = cluster.ask("requests")
    available_at = cluster.ask("available")
    for result in results:
        rollout = result["rollout"]
        rollout.refresh_from_db()
        assert rollout.state == "succeeded", f"rollout {rollout.pk}: {rollout.state}: {rollout.failure_reason}"
        path = f"/deployments/{identity_for(rollout.environment, rollout.model).name}"
        applies = [
            at
            for method, request_path, content_type, _, at, _ in records
            if method == "PATCH" and request_path.endswith(path) and content_type.startswith("application/apply-patch")
        ]
        result["first_apply"] = min(at for at in applies if at >= result["requested"])
        name = path.rsplit("/", 1)[1]
        result["service_applied"] = min(
            at
            for method, request_path, _, _, at, _ in records
            if method == "PATCH" and request_path.endswith(f"/services/{name}") and at >= result["requested"]
        )
        result["claimed"] = rollout.started_at.timestamp()
        result["available"] = available_at[str(rollout.pk)]
        result["shown"] = rollout.finished_at.timestamp()
    return results


def platform_requests(cluster) -> list[str]:
    """What the platform asked, one "METHOD resource" per request ("(one)" for an object, watches marked)."""
    return [
        f"{method} {request_kind(path)}{' (watch)' * watch}"
        for method, path, _, agent, _, watch in cluster.ask("requests")
        if not agent.startswith(INTERNAL)
    ]


def request_kind(path: str) -> str:
    parts = path.strip("/").split("/")
    if "namespaces" not in parts[:-2]:
        return path
    resource = parts[parts.index("namespaces") + 2 :]
    return resource[0] + (" (one)" if len(resource) > 1 else "")


def measure(cluster, environment, user, models, concurrency: int, first_round: int, worker) -> dict:
    before, cluster_cpu_before = platform_requests(cluster), cluster.ask("cpu")
    cpu_before = process_cpu() + process_cpu(worker.process.pid)
    samples: list[dict] = []
    for n in range(ROUNDS[concurrency]):
        samples += run(cluster, environment, user, models, concurrency, first_round + n)
    after, cluster_cpu_after = platform_requests(cluster), cluster.ask("cpu")
    cpu_after = process_cpu() + process_cpu(worker.process.pid)
    to_apply = [s["first_apply"] - s["requested"] for s in samples]
    to_shown = [s["shown"] - s["available"] for s in samples]
    to_claim = [s["claimed"] - s["requested"] for s in samples]
    to_answer = [s["answered"] - s["requested"] for s in samples]
    to_service = [s["service_applied"] - s["claimed"] for s in samples]
    return {
        "samples": len(samples),
        "apply_p50": percentile(to_apply, 50),
        "apply_p95": percentile(to_apply, 95),
        "service_p50": percentile(to_service, 50),
        "service_p95": percentile(to_service, 95),
        "answer_p50": percentile(to_answer, 50),
        "answer_p95": percentile(to_answer, 95),
        "claim_p50": percentile(to_claim, 50),
        "claim_p95": percentile(to_claim, 95),
        "shown_p50": percentile(to_shown, 50),
        "shown_p95": percentile(to_shown, 95),
        "requests": (len(after) - len(before)) / len(samples),
        "by_kind": {kind: round(n / len(samples), 1) for kind, n in Counter(after[len(before) :]).most_common()},
        "platform_cpu": (cpu_after - cpu_before) / len(samples),
        "cluster_cpu": (cluster_cpu_after - cluster_cpu_before) / len(samples),
    }


def process_cpu(pid: int | None = None) -> float:
    """CPU seconds of this process (the API requests), or of another (the rollouts worker)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    django_ready()
    import redis
    from django.conf import settings
    from kubernetes import client, config

    from accounts.models import Role
    from deployments.models import Environment, TargetKind
    from tests.support.factories import (
        MembershipFactory,
        ModelFactory,
        RegistryFactory,
        TeamFactory,
        UserFactory,
        grant,
    )

    stamp = f"{int(time.time())}"
    team = TeamFactory(slug=f"bench-rollouts-{stamp}")
    user = UserFactory(username=f"bench-rollouts-{stamp}")
    MembershipFactory(team=team, user=user, role=Role.DEVELOPER)
    RegistryFactory()
    models = [ModelFactory(team=team, name=f"model-{n:02d}", created_by=user) for n in range(max(ROUNDS))]
    rows = []
    round_number = 1
    redis.Redis.from_url(settings.REDIS_URL).delete(settings.ROLLOUT_QUEUE)
    worker = RolloutWorker(Path(mkdtemp(prefix="slipway-bench-")) / "rollouts-worker.log")
    for mode in MODES:  # each on an API server and controllers of its own, in a process of its own
        cluster = Cluster()
        try:
            namespace = f"bench-{mode}"
            kube = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
            kube.create_namespace({"metadata": {"name": namespace}})
            if mode == "poll":
                for resource in ("deployments", "pods"):
                    cluster.ask("deny", "watch", resource, namespace)
            environment = Environment.objects.create(
                name=f"bench-{mode}-{stamp}",
                position=10,
                target=TargetKind.KUBERNETES,
                namespace=namespace,
                kubeconfig=cluster.kubeconfig.read_text(),
            )
            grant(environment, team)
            try:
                # Not counted: a new emulated server spends its first writes loading schemas (a real one
                # has them), and the worker's first rollout imports the Kubernetes client.
                (first,) = run(cluster, environment, user, models, 1, round_number)
                round_number += 1
                cold = first["first_apply"] - first["requested"]
                print(f"measured: {mode}, first rollout (not counted): {cold:.2f} s", file=sys.stderr, flush=True)
                for concurrency in ROUNDS:
                    row = measure(cluster, environment, user, models, concurrency, round_number, worker)
                    round_number += ROUNDS[concurrency]
                    rows.append((mode, concurrency, row))
                    print(f"measured: {mode}, {concurrency} at once: {row}", file=sys.stderr, flush=True)
            except AssertionError:
                print(f"the emulated controllers' errors: {cluster.ask('errors')[-5:]}", file=sys.stderr)
                raise
        finally:
            cluster.close()
    worker.stop()
    print("## Rollouts against the emulated Kubernetes API\n")
    print("| follows the rollout by | concurrent | rollouts | request -> first apply p50 / p95 "
          "| of which: answered / claimed by the worker, p95 "
          "| available -> shown succeeded p50 / p95 | API requests per rollout "
          "| CPU per rollout: platform / emulated cluster |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for mode, concurrency, row in rows:
        how = "watches" if mode == "watch" else "polling every 0.5 s (watches refused)"
        print(
            f"| {how} | {concurrency} | {row['samples']} | {row['apply_p50']:.2f} s / {row['apply_p95']:.2f} s "
            f"| {row['answer_p95']:.2f} s / {row['claim_p95']:.2f} s "
            f"| {row['shown_p50']:.2f} s / {row['shown_p95']:.2f} s | {row['requests']:.1f} "
            f"| {1000 * row['platform_cpu']:.0f} ms / {1000 * row['cluster_cpu']:.0f} ms |"
        )
    watched = [row for mode, _, row in rows if mode == "watch"]
    if watched:
        met = all(row["apply_p95"] <= 2 and row["shown_p95"] <= 2 for row in watched)
        verdict = "met" if met else "missed"
        print(f"\nTarget (with watches): both p95 at most 2 s, at 1 and at 20 concurrent: **{verdict}**.")


if __name__ == "__main__":
    main()
