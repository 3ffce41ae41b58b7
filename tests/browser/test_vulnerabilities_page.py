"""The build page shows what the image's scan found (a summary by severity, a table that filters); the overview,
the environment and the promotion show what the scans mean for releases."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.permissions import Actor
from deployments.models import Finding, Rollout, RolloutState
from deployments.services import promotions, vulnerabilities
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build
from tests.support.osv import CVSS_CRITICAL, CVSS_HIGH, CVSS_MEDIUM, advisory, write_folder

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's
GLIBC = "2.36-9+deb12u4"
DEBIAN = [
    ("libc6", "glibc", GLIBC),
    ("libc-bin", "glibc", GLIBC),
    ("libssl3", "openssl", "3.0.15-1~deb12u1"),
    ("openssl", "openssl", "3.0.15-1~deb12u1"),
    ("zlib1g", "zlib", "1:1.2.13.dfsg-1"),
    ("libsqlite3-0", "sqlite3", "3.40.1-2+deb12u1"),
    ("python3.11-minimal", "python3.11", "3.11.2-6+deb12u6"),
]


@pytest.fixture
def scanned_build(model, settings, tmp_path):
    settings.VULN_DB = str(
        write_folder(
            tmp_path / "osv",
            [
                advisory(
                    "GHSA-demo-0001",
                    "scikit-learn",
                    ("introduced", "1.0"),
                    ("fixed", "1.9.2"),
                    aliases=["CVE-2026-41001"],
                    cvss=CVSS_HIGH,
                    summary="Unsafe deserialisation of model files",
                ),
                advisory(
                    "PYSEC-2026-17",
                    "numpy",
                    ("introduced", "0"),
                    ("fixed", "2.4.7"),
                    aliases=["CVE-2026-41017"],
                    cvss=CVSS_MEDIUM,
                    summary="Buffer over-read in a string routine",
                ),
                advisory(
                    "DEBIAN-CVE-2026-41002",
                    "glibc",
                    ("introduced", "0"),
                    ("fixed", "2.36-9+deb12u99"),
                    ecosystem="Debian:12",
                    urgency="medium",
                    summary="Heap overflow in the resolver",
                ),
                advisory(
                    "DSA-5999-1",
                    "openssl",
                    ("introduced", "0"),
                    ("fixed", "3.0.15-1~deb12u2"),
                    ecosystem="Debian:12",
                    aliases=["CVE-2026-41003"],
                    cvss=CVSS_CRITICAL,
                    summary="Remote code execution in a TLS extension",
                ),
                advisory(
                    "DEBIAN-CVE-2026-41004",
                    "sqlite3",
                    ("introduced", "0"),
                    ecosystem="Debian:12",
                    urgency="unimportant",
                    summary="Integer overflow in a rarely used function",
                ),
            ],
        )
    )
    vulnerabilities.database_refresh()
    RegistryFactory()
    build = succeeded_build(VersionFactory(model=model, number=1))
    build.bill_of_materials = [
        {"ecosystem": "PyPI", "name": "scikit-learn", "version": "1.9.1", "filename": "a.whl", "sha256": "0" * 64},
        {"ecosystem": "PyPI", "name": "numpy", "version": "2.4.6", "filename": "b.whl", "sha256": "1" * 64},
        {"ecosystem": "generic", "name": "slipway-serving", "version": "0123456789abcdef"},
        *(
            {
                "ecosystem": "Debian:12",
                "name": name,
                "version": version,
                "arch": "amd64",
                "source": source,
                "source_version": version,
            }
            for name, source, version in DEBIAN
        ),
    ]
    build.save()
    vulnerabilities.scan_build(build)
    return build


def test_the_build_page_summarises_and_filters_findings_on_a_desktop_and_a_phone(signed_in, viewer, scanned_build):
    session = signed_in(viewer.username, PASSWORD)
    page = session.go(f"/builds/{scanned_build.pk}/#vulnerabilities")
    rows = page.locator("#vulnerabilities tbody tr")
    assert rows.count() == 5
    assert rows.first.inner_text().startswith("critical")
    session.shot("build-vulnerabilities-desktop")

    page.select_option("#vuln-severity", "high")
    page.click("#vulnerabilities button[type=submit]")
    page.wait_for_url("**min_severity=high**")
    assert [r.split("\t")[0] for r in page.locator("#vulnerabilities tbody tr").all_inner_texts()] == [
        "critical",
        "high",
    ]

    page.set_viewport_size({"width": 390, "height": 844})
    session.go(f"/builds/{scanned_build.pk}/#vulnerabilities")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    session.shot("build-vulnerabilities-phone")
    assert session.errors == []


def test_the_flag_the_policy_and_the_promotion_context_on_their_pages(
    signed_in, owner, teammate, team, model, scanned_build
):
    prod = EnvironmentFactory(name="prod", team=team, position=30, protected=True, block_severity="critical")
    deployed = timezone.now() - timedelta(days=2)
    Rollout.objects.create(
        environment=prod,
        model=model,
        version=scanned_build.version,
        build=scanned_build,
        image=scanned_build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=deployed,
    )
    # Two of the findings were there when it was deployed; the others came with a later refresh.
    Finding.objects.filter(build=scanned_build, severity__in=["low", "medium"]).update(first_seen_at=deployed)
    vulnerabilities.acceptance_create(
        actor=Actor(user=owner),
        environment=prod,
        model=model,
        advisory_id="CVE-2026-41003",
        reason="The TLS extension is disabled in this image.",
        expires_at=timezone.now() + timedelta(days=14),
    )
    newer = succeeded_build(VersionFactory(model=model, number=2), "c")
    newer.bill_of_materials = [i for i in scanned_build.bill_of_materials if i["name"] not in ("numpy", "libsqlite3-0")]
    newer.save()
    vulnerabilities.scan_build(newer)
    promotion = promotions.promotion_request(
        actor=Actor(user=teammate), version=newer.version, environment=prod, reason="Retrained on November's data"
    )

    session = signed_in(owner.username, PASSWORD)
    page = session.go("/")
    assert "2 new vulnerabilities since deploy" in page.inner_text(".matrix")
    session.shot("overview-vulnerable-release-desktop")
    page = session.go(f"/environments/{prod.pk}/")
    assert "2 new vulnerabilities since deploy" in page.inner_text("main")
    assert "The TLS extension is disabled in this image." in page.inner_text("#vulnerability-policy")
    session.shot("environment-vulnerabilities-desktop")
    page = session.go(f"/promotions/{promotion.pk}/")
    text = page.inner_text("main")
    assert "CVE-2026-41017 in numpy 2.4.6, medium, fixed in 2.4.7" in text  # removed by the new image
    assert "Accepted in prod for iris: CVE-2026-41003 by owner until" in text
    session.shot("promotion-vulnerabilities-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    for path, name in ((f"/environments/{prod.pk}/", "environment"), (f"/promotions/{promotion.pk}/", "promotion")):
        session.go(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"the {name} page scrolls sideways on a phone ({width} px)"
        session.shot(f"{name}-vulnerabilities-phone")
    assert session.errors == []
