"""Cold and warm image builds of a small scikit-learn model, start to pushed.

    .venv/bin/python benchmarks/builds/run.py

Needs the Docker engine and writes to a throwaway registry on 127.0.0.1 (both started here when
missing, with the scripts `make test` uses). Prints a Markdown report.

With SLIPWAY_VULN_DB set (e.g. to the full-size mirror benchmarks/vulns/run.py leaves in var/bench-osv),
each build is scanned before it succeeds, as in production, and the scan's time is reported beside it.
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import ROOT, django_ready

SCRIPTS = ROOT / "platform" / "scripts"


def main() -> None:
    django_ready()
    import docker
    import joblib
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import TemporaryUploadedFile
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from accounts.models import Membership, Role, Team
    from accounts.permissions import Actor
    from deployments.models import Build, ContainerRegistry
    from deployments.runners import builds as build_runner
    from deployments.selectors.vulnerabilities import database_status
    from deployments.services import vulnerabilities
    from registry import services
    from registry.models import RegisteredModel

    subprocess.run(["bash", str(SCRIPTS / "ensure-docker.sh")], check=True)
    base = subprocess.run(
        ["bash", str(SCRIPTS / "base-image.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="slipway-bench-"))
    port = 5098
    subprocess.run(["bash", str(SCRIPTS / "ensure-registry.sh"), str(port), str(work / "registry")], check=True)
    settings.BASE_IMAGE = base
    settings.BUILD_WORKDIR = work / "builds"
    settings.WHEEL_CACHE = work / "wheels"  # empty: the cold build downloads its wheels
    settings.MEDIA_ROOT = work / "media"

    if settings.VULN_DB and database_status().refreshed_at is None:
        vulnerabilities.database_refresh()
    advisories = database_status().advisory_count if settings.VULN_DB else 0

    engine = docker.from_env(timeout=600)  # a busy engine (other builds) answers a prune slowly
    run_id = time.strftime("%H%M%S")
    model_name = f"bench-{run_id}"
    # Cold means no layer of this dependency set exists yet: forget earlier benchmark images.
    for image in engine.images.list(filters={"label": "io.slipway.team=bench"}):
        engine.images.remove(image.id, force=True)
    engine.images.prune(filters={"dangling": True})

    user, _ = get_user_model().objects.get_or_create(username="bench")
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ADMIN})
    ContainerRegistry.objects.filter(team=team).delete()
    ContainerRegistry.objects.create(team=team, name="bench", url=f"127.0.0.1:{port}", insecure=True)
    actor = Actor(user=user)
    model = RegisteredModel.objects.create(team=team, name=model_name, created_by=user, auto_build=False)

    features, labels = load_iris(return_X_y=True)
    results = []
    for label, seed in (("cold", 0), ("warm", 1)):
        path = work / f"model-{label}.joblib"
        joblib.dump(LogisticRegression(max_iter=300 + seed).fit(features, labels), path)
        data = path.read_bytes()
        upload = TemporaryUploadedFile("model.joblib", "application/octet-stream", len(data), None)
        upload.write(data)
        upload.seek(0)
        upload.sha256 = hashlib.sha256(data).hexdigest()
        version = services.version_create(
            actor=actor, model=model, framework="sklearn", artifact=upload, requirements=["scikit-learn==1.9.1"]
        )
        upload.close()
        build = Build.objects.create(
            version=version, registry=ContainerRegistry.objects.get(team=team), started_by=user
        )
        started = time.monotonic()
        build_runner.execute(build_id=build.pk)
        elapsed = time.monotonic() - started
        build.refresh_from_db()
        if build.state != "succeeded":
            sys.exit(f"{label} build failed: {build.failure_reason}")
        results.append((label, elapsed, build, len(data)))

    (_, cold, _, _), (_, warm, warm_build, artifact_size) = results
    image = engine.images.get(warm_build.image_reference)
    base_size = engine.images.get(base).attrs["Size"]
    venv_layer = next((layer for layer in image.history() if "/opt/venv" in (layer.get("CreatedBy") or "")), None)
    print(f"## Build benchmark ({time.strftime('%Y-%m-%d')}, base {base})\n")
    print(f"Vulnerability scan: {f'{advisories:,} advisories' if advisories else 'off (SLIPWAY_VULN_DB unset)'}\n")
    print(
        "| build | start to pushed | building step | smoke test step | pushing step | of which scan |\n"
        "|---|---|---|---|---|---|"
    )
    for label, elapsed, build, _ in results:
        scan = f"{build.scan_seconds:.2f} s" if build.scan_seconds is not None else "—"
        building, testing, pushing = (build.steps[step]["seconds"] for step in ("building", "testing", "pushing"))
        print(f"| {label} | {elapsed:.1f} s | {building:.1f} s | {testing:.1f} s | {pushing:.1f} s | {scan} |")
    print(f"\nwarm / cold = {warm / cold:.1%} (target: at most 15 %, and warm at most 10 s)\n")
    print(f"image {image.attrs['Size'] / 1e6:.1f} MB = base {base_size / 1e6:.1f} MB + layers:\n")
    print("| layer | size | created by |\n|---|---|---|")
    for layer in image.history():
        if layer["Size"]:
            print(
                f"| {layer['Id'][7:19] if layer['Id'] != '<missing>' else '—'} | {layer['Size'] / 1e6:.2f} MB | "
                f"`{(layer.get('CreatedBy') or '')[-70:].replace('|', '/')}` |"
            )
    deps = venv_layer["Size"] if venv_layer else 0
    budget = base_size + deps + artifact_size + 20e6
    print(
        f"\nbudget: base + dependencies ({deps / 1e6:.1f} MB) + artifact ({artifact_size / 1e3:.1f} KB) + 20 MB = "
        f"{budget / 1e6:.1f} MB; image {image.attrs['Size'] / 1e6:.1f} MB: "
        f"{'within' if image.attrs['Size'] <= budget else 'OVER'} budget"
    )
    subprocess.run(["bash", str(SCRIPTS / "stop-registry.sh"), str(work / "registry")], check=False)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
