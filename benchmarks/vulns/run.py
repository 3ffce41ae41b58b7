"""Scanning an image against OSV databases of full PyPI and Debian size.

    .venv/bin/python benchmarks/vulns/run.py [--advisories-pypi 25000] [--advisories-debian 60000]

Generates an OSV mirror of the size OSV publishes (per-ecosystem all.zip files: tens of thousands of
PyPI advisories, Debian advisories with entries for Debian 11, 12 and 13, the packages of a typical image
among the most-advised), loads it with the refresh the periodic task runs, then scans a build of about
300 Debian packages and 20 Python packages the way the build runner does, several times, each with the
version caches emptied. Prints a Markdown report. Target: a scan in at most 3 s on 2 cores.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import ROOT, django_ready

MIRROR = ROOT / "var" / "bench-osv"
DEBIAN_RELEASES = ("Debian:11", "Debian:12", "Debian:13")
PYTHON_IMAGE = [  # what a scikit-learn image installs, and more
    ("numpy", "2.4.6"),
    ("scipy", "1.16.3"),
    ("scikit-learn", "1.9.1"),
    ("joblib", "1.5.2"),
    ("threadpoolctl", "3.6.0"),
    ("pandas", "2.3.3"),
    ("python-dateutil", "2.9.0"),
    ("pytz", "2025.2"),
    ("six", "1.17.0"),
    ("tzdata", "2025.2"),
    ("onnxruntime", "1.32.0"),
    ("protobuf", "6.33.1"),
    ("flatbuffers", "25.9.23"),
    ("coloredlogs", "15.0.1"),
    ("humanfriendly", "10.0"),
    ("sympy", "1.14.0"),
    ("mpmath", "1.3.0"),
    ("packaging", "25.0"),
    ("pillow", "12.0.0"),
    ("requests", "2.32.5"),
]


def base_image_packages() -> list[dict]:
    """The Debian packages of SLIPWAY_BASE_IMAGE, read as a build reads them (none without the engine)."""
    import docker

    from deployments.imaging.packages import debian_packages

    image = os.environ.get("SLIPWAY_BASE_IMAGE", "slipway/python:3.11-bookworm")
    try:
        client = docker.APIClient(version="auto", timeout=300)
        ecosystem, packages = debian_packages(client, image)
    except docker.errors.DockerException:
        return []
    return [
        {
            "ecosystem": ecosystem,
            "name": p.name,
            "version": p.version,
            "arch": p.architecture,
            "source": p.source,
            "source_version": p.source_version,
        }
        for p in packages
    ]


def debian_image(rng: random.Random) -> list[dict]:
    """About 300 binary packages: the base image's own, and more from made-up source packages (what a
    model's system dependencies add), with bookworm-like versions."""
    items = base_image_packages()
    for index in range(150):
        source = f"src{index:03d}"
        upstream = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"
        revision = rng.randint(1, 9)
        update = rng.randint(0, 12)
        version = f"{upstream}-{revision}" + (f"+deb12u{update}" if update else "")
        if rng.random() < 0.1:
            version = f"1:{version}"
        for binary in range(2 if index % 3 else 3):
            items.append(
                {
                    "ecosystem": "Debian:12",
                    "name": f"lib{source}-{binary}",
                    "version": version,
                    "arch": "amd64",
                    "source": source,
                    "source_version": version,
                }
            )
    return items[:300]  # the base image's first


def _debian_fixed(version: str, rng: random.Random, affected: bool) -> str:
    """A fixed version just above the installed one (it is affected) or just below it (it is not), in
    Debian's order whatever the version's shape: "+" sorts after the end of a version, "~" before it."""
    return f"{version}{'+' if affected else '~'}bench{rng.randint(1, 40)}"


def generate(pypi_count: int, debian_count: int, seed: int = 7, *, write: bool = True) -> tuple[list[dict], int]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, reproducible by its seed
    image = debian_image(rng)
    sources = {item["source"]: item["source_version"] for item in image}
    python = [
        {"ecosystem": "PyPI", "name": name, "version": version, "filename": f"{name}.whl", "sha256": "0" * 64}
        for name, version in PYTHON_IMAGE
    ]
    bill = [*python, {"ecosystem": "generic", "name": "slipway-serving", "version": "bench"}, *image]
    if not write:
        return bill, 0
    MIRROR.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(MIRROR)
    (MIRROR / "PyPI").mkdir(parents=True)
    (MIRROR / "Debian").mkdir(parents=True)
    with zipfile.ZipFile(MIRROR / "PyPI" / "all.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for n in range(pypi_count):
            if n % 25 == 0:  # the image's packages are among the most advised
                name, installed = PYTHON_IMAGE[(n // 25) % len(PYTHON_IMAGE)]
                major, minor, *_ = installed.split(".")
                affected = rng.random() < 0.1
                fixed = f"{major}.{int(minor) + 1}.0" if affected else f"{major}.{max(0, int(minor) - 1)}.0"
            else:
                name, fixed = (
                    f"pkg-{rng.randint(0, 12000)}",
                    f"{rng.randint(0, 5)}.{rng.randint(0, 20)}.{rng.randint(1, 9)}",
                )
            events = (
                [{"introduced": "0"}, {"fixed": fixed}]
                if rng.random() < 0.9
                else [{"introduced": "1.0"}, {"last_affected": fixed}]
            )
            raw = {
                "id": f"GHSA-bench-{n:06d}",
                "modified": "2026-11-01T00:00:00Z",
                "aliases": [f"CVE-2026-{n:06d}"],
                "summary": f"Synthetic advisory {n} for {name}",
                "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": name},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    }
                ],
                "references": [{"type": "ADVISORY", "url": f"https://example.org/GHSA-bench-{n:06d}"}],
            }
            bundle.writestr(f"{raw['id']}.json", json.dumps(raw))
    source_names = list(sources)
    hits = 0
    with zipfile.ZipFile(MIRROR / "Debian" / "all.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for n in range(debian_count):
            if n % 5 == 0:  # a fifth of Debian's advisories concern the image's ~150 source packages
                source = source_names[int(rng.paretovariate(1.2)) % len(source_names)]
                installed = sources[source]
                affected = rng.random() < 0.05
                hits += affected
                fixed = _debian_fixed(installed, rng, affected)
            else:
                source, fixed = (
                    f"other{rng.randint(0, 2500)}",
                    f"{rng.randint(1, 9)}.{rng.randint(0, 9)}-{rng.randint(1, 5)}",
                )
            affected_entries = []
            for release in DEBIAN_RELEASES:
                events = [{"introduced": "0"}] + ([{"fixed": fixed}] if rng.random() < 0.95 else [])
                affected_entries.append(
                    {
                        "package": {"ecosystem": release, "name": source},
                        "ranges": [{"type": "ECOSYSTEM", "events": events}],
                        "ecosystem_specific": {
                            "urgency": rng.choice(["low", "medium", "high", "unimportant", "not yet assigned"])
                        },
                    }
                )
            raw = {
                "id": f"DEBIAN-CVE-2026-{n:06d}",
                "modified": "2026-11-01T00:00:00Z",
                "upstream": [f"CVE-2026-{900000 + n:06d}"],
                "summary": f"Synthetic Debian advisory {n} for {source}",
                "affected": affected_entries,
            }
            bundle.writestr(f"{raw['id']}.json", json.dumps(raw))
    return bill, hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--advisories-pypi", type=int, default=25_000)
    parser.add_argument("--advisories-debian", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scan-only", action="store_true", help="Keep the mirror and database of an earlier run.")
    args = parser.parse_args()
    django_ready()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.models import Team
    from deployments.models import AffectedPackage, Build, BuildState, Finding
    from deployments.osv.versions import compare, version_key
    from deployments.services import vulnerabilities
    from registry.models import ModelVersion, RegisteredModel

    settings.VULN_DB = str(MIRROR)
    started = time.monotonic()
    bill, _ = generate(args.advisories_pypi, args.advisories_debian, write=not args.scan_only)
    generated = time.monotonic() - started
    size = sum(p.stat().st_size for p in MIRROR.rglob("*.zip"))
    first_load = unchanged_load = None
    if not args.scan_only:
        with connection.cursor() as cursor:  # the first load starts from an empty database
            cursor.execute("TRUNCATE deployments_affectedpackage, deployments_advisory")
        started = time.monotonic()
        vulnerabilities.database_refresh()
        first_load = time.monotonic() - started
        started = time.monotonic()
        vulnerabilities.database_refresh()
        unchanged_load = time.monotonic() - started

    user, _ = get_user_model().objects.get_or_create(username="bench")
    team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    model, _ = RegisteredModel.objects.get_or_create(team=team, name="bench-vulns", defaults={"created_by": user})
    version = ModelVersion.objects.filter(model=model).first() or ModelVersion.objects.create(
        model=model,
        number=1,
        framework="sklearn",
        artifact_name="model.joblib",
        artifact_sha256="0" * 64,
        artifact_size=1,
        created_by=user,
    )
    Build.objects.filter(version=version).delete()
    build = Build.objects.create(version=version, state=BuildState.SUCCEEDED, bill_of_materials=bill)
    installed = vulnerabilities.installed_packages(bill)
    candidates = AffectedPackage.objects.filter(
        ecosystem__in=["PyPI", "Debian:12"], name__in=[p.name for p in installed]
    ).count()

    timings, cpu = [], []
    for _ in range(args.runs):
        version_key.cache_clear()  # a worker scans many images; assume none of these versions was seen
        compare.cache_clear()
        started, started_cpu = time.monotonic(), time.process_time()
        result = vulnerabilities.scan_build(build)
        timings.append(time.monotonic() - started)
        cpu.append(time.process_time() - started_cpu)
    findings = Finding.objects.filter(build=build).count()

    print(f"## Vulnerability scan benchmark ({time.strftime('%Y-%m-%d')})\n")
    print(
        f"Database: {args.advisories_pypi:,} PyPI + {args.advisories_debian:,} Debian advisories "
        f"({AffectedPackage.objects.count():,} affected-package rows; Debian entries for 11, 12 and 13), "
        f"{size / 1e6:.1f} MB of all.zip, generated in {generated:.1f} s.\n"
    )
    if first_load is not None:
        print("| step | time |\n|---|---|")
        print(f"| first load (read, parse, store every advisory) | {first_load:.1f} s |")
        print(f"| refresh with nothing changed (read, parse, compare) | {unchanged_load:.1f} s |")
    print(
        f"\nImage: {sum(1 for i in bill if i['ecosystem'].startswith('Debian'))} Debian packages "
        f"({sum(1 for p in installed if p.ecosystem.startswith('Debian'))} source packages) and "
        f"{sum(1 for i in bill if i['ecosystem'] == 'PyPI')} Python packages; {candidates:,} advisory entries "
        f"name one of them; {findings} findings.\n"
    )
    load = os.getloadavg()[0]
    print(f"Load average when the scans ran: {load:.1f} on {os.cpu_count()} cores.\n")
    print("| scan (`scan_build`: query, range evaluation, findings stored) | wall clock | CPU of this process |")
    print("|---|---|---|")
    print(f"| first (findings created) | {timings[0]:.2f} s | {cpu[0]:.2f} s |")
    print(f"| median of {len(timings)} | {statistics.median(timings):.2f} s | {statistics.median(cpu):.2f} s |")
    print(f"| worst | {max(timings):.2f} s | {max(cpu):.2f} s |")
    verdict = "met" if max(timings) <= 3 else "NOT met"
    print(f"\nTarget: at most 3 s per scan on 2 cores: **{verdict}** (counts {result.counts}).")


if __name__ == "__main__":
    main()
