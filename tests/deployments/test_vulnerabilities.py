"""Vulnerabilities: the database the operator mirrors, each build's findings, the environment's policy,
accepted findings that expire, and running releases re-checked when the database is refreshed."""

import logging
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import Actor
from audit.models import AuditEvent
from deployments.models import Finding, Rollout, RolloutState, VulnerabilityDatabase, Webhook, WebhookDelivery
from deployments.selectors.vulnerabilities import vulnerable_since_release
from deployments.services import vulnerabilities
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build
from tests.support.osv import CVSS_HIGH, advisory, write_folder

SKLEARN = "1.9.1"  # the scikit-learn the test models are trained with (pyproject's dev dependencies)
GLIBC = "2.36-9+deb12u4"

SK_ADVISORY = advisory(
    "GHSA-test-sk01",
    "scikit-learn",
    ("introduced", "1.0"),
    ("fixed", "1.9.2"),
    aliases=["CVE-2026-41001"],
    cvss=CVSS_HIGH,
    summary="Model loading runs code",
)
GLIBC_ADVISORY = advisory(
    "DEBIAN-CVE-2026-41002",
    "glibc",
    ("introduced", "0"),
    ("fixed", "2.36-9+deb12u99"),
    ecosystem="Debian:12",
    urgency="medium",
)
NUMPY_ADVISORY = advisory("GHSA-test-np01", "numpy", ("introduced", "0"), ("last_affected", "2.4.6"), label="LOW")
NUMPY_WITHDRAWN = advisory(
    "GHSA-test-np01", "numpy", ("introduced", "0"), modified="2026-11-20T00:00:00Z", withdrawn="2026-11-20T00:00:00Z"
)
MALFORMED = ['{"id": "BROKEN-1", "modified": "2026-11-01T00:00:00Z", "affected": "everything"}']

BILL = [
    {"ecosystem": "PyPI", "name": "scikit-learn", "version": SKLEARN, "filename": "x.whl", "sha256": "0" * 64},
    {"ecosystem": "PyPI", "name": "numpy", "version": "2.4.6", "filename": "y.whl", "sha256": "1" * 64},
    {"ecosystem": "generic", "name": "slipway-serving", "version": "0123456789abcdef"},
    *(
        {
            "ecosystem": "Debian:12",
            "name": name,
            "version": GLIBC,
            "arch": "amd64",
            "source": "glibc",
            "source_version": GLIBC,
        }
        for name in ("libc6", "libc-bin")
    ),
    {
        "ecosystem": "Debian:12",
        "name": "zlib1g",
        "version": "1:1.2.13.dfsg-1",
        "arch": "amd64",
        "source": "zlib",
        "source_version": "1:1.2.13.dfsg-1",
    },
]


@pytest.fixture
def osv_folder(tmp_path, settings):
    folder = write_folder(tmp_path / "osv", [SK_ADVISORY, GLIBC_ADVISORY, NUMPY_ADVISORY], malformed=MALFORMED)
    settings.VULN_DB = str(folder)
    return folder


@pytest.fixture
def loaded(osv_folder):
    vulnerabilities.database_refresh()
    return osv_folder


@pytest.fixture
def version(model):
    RegistryFactory()
    version = VersionFactory(model=model, number=1)
    build = succeeded_build(version)
    build.bill_of_materials = BILL
    build.save()
    return version


@pytest.fixture
def build(version):
    return version.builds.get()


@pytest.fixture
def prod(team):
    return EnvironmentFactory(
        name="prod", team=team, position=30, protected=True, required_approvals=1, block_severity="high"
    )


def test_a_refresh_loads_the_folder_and_skips_the_malformed_advisory_with_a_warning(osv_folder, caplog):
    with caplog.at_level(logging.WARNING):
        outcome = vulnerabilities.database_refresh()
    assert (outcome["changed"], outcome["removed"], outcome["skipped"]) == (3, 0, 1)
    state = VulnerabilityDatabase.objects.get()
    assert state.source == str(osv_folder) and state.advisory_count == 3 and state.refreshed_at
    assert state.skipped == ["BROKEN-0.json: BROKEN-1: 'affected' must be a list"]
    assert any("skipped a malformed OSV advisory, BROKEN-0.json" in r.getMessage() for r in caplog.records)
    assert vulnerabilities.database_refresh()["changed"] == 0  # nothing new: nothing rewritten


def test_an_unreachable_source_keeps_the_database_and_says_why(loaded, settings, tmp_path):
    settings.VULN_DB = str(tmp_path / "gone")
    outcome = vulnerabilities.database_refresh()
    assert "neither a folder" in outcome["error"]
    state = VulnerabilityDatabase.objects.get()
    assert state.advisory_count == 3 and "neither a folder" in state.last_error


def test_a_build_is_scanned_by_python_and_debian_source_packages(loaded, build):
    result = vulnerabilities.scan_build(build)
    found = {
        (f.advisory_id, f.package, f.installed_version, f.fixed_version, f.severity) for f in Finding.objects.all()
    }
    assert found == {
        ("GHSA-test-sk01", "scikit-learn", SKLEARN, "1.9.2", "high"),
        ("DEBIAN-CVE-2026-41002", "glibc", GLIBC, "2.36-9+deb12u99", "medium"),  # once for libc6 and libc-bin
        ("GHSA-test-np01", "numpy", "2.4.6", "", "low"),  # last_affected: that version, no fix
    }
    assert result.counts == {"unknown": 0, "low": 1, "medium": 1, "high": 1, "critical": 0}
    build.refresh_from_db()
    assert build.scanned_at and build.vulnerability_counts["high"] == 1


def test_the_api_lists_filters_and_exports_findings(api, viewer, stranger, loaded, build):
    vulnerabilities.scan_build(build)
    url = f"/api/v1/builds/{build.pk}/vulnerabilities/"
    body = api.as_user(viewer).get(url).json()
    assert [f["advisory_id"] for f in body["findings"]] == ["GHSA-test-sk01", "DEBIAN-CVE-2026-41002", "GHSA-test-np01"]
    assert body["findings"][0]["aliases"] == ["CVE-2026-41001"]
    assert body["findings"][0]["explanation"] == "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2"
    assert body["counts"]["medium"] == 1 and body["database"]["source"]
    assert [f["package"] for f in api.get(url + "?min_severity=medium").json()["findings"]] == ["scikit-learn", "glibc"]
    assert [f["package"] for f in api.get(url + "?ecosystem=debian").json()["findings"]] == ["glibc"]
    assert [f["package"] for f in api.get(url + "?q=CVE-2026-41001").json()["findings"]] == ["scikit-learn"]
    assert api.get(url + "?severity=severe").json() == {
        "severity": ["Choose one of unknown, low, medium, high, critical."]
    }

    vex = api.get(url + "?output=vex&download=1")
    assert vex["Content-Disposition"] == f'attachment; filename="build-{build.pk}-vex.cdx.json"'
    document = vex.json()
    assert document["bomFormat"] == "CycloneDX"
    by_id = {v["id"]: v for v in document["vulnerabilities"]}
    assert by_id["DEBIAN-CVE-2026-41002"]["affects"][0]["ref"].startswith("pkg:deb/debian/libc")
    assert by_id["GHSA-test-sk01"]["affects"][0]["ref"] == f"pkg:pypi/scikit-learn@{SKLEARN}"
    assert by_id["GHSA-test-sk01"]["ratings"] == [{"severity": "high"}]

    assert api.as_user(stranger).get(url).status_code == 404


def test_the_bom_lists_debian_packages_and_the_runtime_with_purls(api, viewer, build):
    components = api.as_user(viewer).get(f"/api/v1/builds/{build.pk}/bom/").json()["components"]
    purls = [c["purl"] for c in components]
    assert f"pkg:pypi/scikit-learn@{SKLEARN}" in purls
    assert "pkg:generic/slipway-serving@0123456789abcdef" in purls
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc" in purls
    assert "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib" in purls


def request_promotion(api, user, version, environment):
    return api.as_user(user).post(
        "/api/v1/promotions/",
        {"version": version.pk, "environment": environment.pk, "reason": "new model"},
        format="json",
    )


def can_i(api, user, action, obj, environment=None):
    query = f"/api/v1/can-i/?action={action}&object={obj}" + (f"&environment={environment.pk}" if environment else "")
    return api.as_user(user).get(query).json()


def test_a_promotion_is_blocked_then_let_through_by_an_acceptance_until_it_expires(
    api, teammate, owner, approver, loaded, version, build, prod
):
    vulnerabilities.scan_build(build)
    refused = request_promotion(api, teammate, version, prod)
    assert refused.status_code == 400
    assert refused.json() == {
        "version": [
            "Prod blocks images with high vulnerabilities or worse: "
            "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2."
        ]
    }
    answer = can_i(api, teammate, "request_promotion", f"version:{version.pk}", prod)
    assert answer["allowed"] is False
    assert "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2" in answer["reason"]

    # Only the environment's admin accepts, with a reason and an expiry in the future.
    payload = {
        "environment": prod.pk,
        "model": version.model.pk,
        "advisory_id": "CVE-2026-41001",
        "reason": "We load only our own artifacts.",
        "expires_at": (timezone.now() + timedelta(seconds=3)).isoformat(),
    }
    assert api.as_user(teammate).post("/api/v1/finding-acceptances/", payload, format="json").status_code == 403
    assert api.as_user(owner).post(
        "/api/v1/finding-acceptances/", {**payload, "reason": " "}, format="json"
    ).json() == {"reason": ["Say why this finding is acceptable for this model."]}
    accepted = api.as_user(owner).post("/api/v1/finding-acceptances/", payload, format="json")
    assert accepted.status_code == 201, accepted.json()
    event = AuditEvent.objects.get(action="vulnerability.accept", outcome="succeeded")
    assert event.flagged and event.reason == "We load only our own artifacts." and event.environment == "prod"

    created = request_promotion(api, teammate, version, prod)
    assert created.status_code == 201, created.json()
    promotion = created.json()["id"]
    changes = api.as_user(approver).get(f"/api/v1/promotions/{promotion}/changes/").json()["vulnerabilities"]
    assert [f["advisory"] for f in changes["added"]] == ["GHSA-test-sk01", "DEBIAN-CVE-2026-41002", "GHSA-test-np01"]
    assert changes["added"][0]["accepted"]["reason"] == "We load only our own artifacts."
    assert changes["acceptances"][0]["by"] == "owner"

    time.sleep(3.2)  # the acceptance expires: it no longer counts
    refused = api.as_user(approver).post(
        f"/api/v1/promotions/{promotion}/approve/", {"digest": created.json()["image"]}, format="json"
    )
    assert refused.status_code == 400
    assert "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2" in str(refused.json())
    assert can_i(api, approver, "approve", f"promotion:{promotion}")["allowed"] is False


def test_the_promotion_shows_what_it_adds_and_removes_against_what_runs(api, approver, teammate, loaded, model):
    prod = EnvironmentFactory(name="prod", position=30, protected=True, grants={model.team: Role.ADMIN})
    RegistryFactory()
    old = VersionFactory(model=model, number=1)
    old_build = succeeded_build(old, "b")
    old_build.bill_of_materials = [item for item in BILL if item["name"] not in ("scikit-learn", "numpy")]
    old_build.save()
    vulnerabilities.scan_build(old_build)
    Rollout.objects.create(
        environment=prod,
        model=model,
        version=old,
        build=old_build,
        image=old_build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    new = VersionFactory(model=model, number=2)
    new_build = succeeded_build(new, "c")
    new_build.bill_of_materials = [i for i in BILL if i["name"] != "libc6" and i["name"] != "libc-bin"]
    new_build.save()
    vulnerabilities.scan_build(new_build)
    promotion = request_promotion(api, teammate, new, prod).json()["id"]
    changes = api.as_user(approver).get(f"/api/v1/promotions/{promotion}/changes/").json()["vulnerabilities"]
    assert [f["advisory"] for f in changes["added"]] == ["GHSA-test-sk01", "GHSA-test-np01"]
    assert [f["advisory"] for f in changes["removed"]] == ["DEBIAN-CVE-2026-41002"]


def test_a_refresh_rechecks_running_releases_flags_and_notifies(
    client, api, viewer, owner, approver, team, model, osv_folder, django_capture_on_commit_callbacks
):
    owner.email = "owner@example.com"
    owner.save()
    Webhook.objects.create(
        team=team, url="https://hooks.example.com/slipway", secret="s", events=["release.vulnerable"]
    )
    write_folder(osv_folder, [NUMPY_ADVISORY])  # the database knows nothing of scikit-learn or glibc yet
    vulnerabilities.database_refresh()
    prod = EnvironmentFactory(name="prod", position=30, grants={model.team: Role.ADMIN})
    version = VersionFactory(model=model, number=1)
    build = succeeded_build(version)
    build.bill_of_materials = BILL
    build.save()
    vulnerabilities.scan_build(build)
    rollout = Rollout.objects.create(
        environment=prod,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    mail.outbox.clear()

    write_folder(osv_folder, [SK_ADVISORY, GLIBC_ADVISORY, NUMPY_WITHDRAWN])  # new advisories; one withdrawn
    with django_capture_on_commit_callbacks(execute=True):
        outcome = vulnerabilities.database_refresh()
    assert (outcome["rechecked"], outcome["flagged"], outcome["removed"]) == (1, 1, 1)
    assert sorted(Finding.objects.filter(build=build).values_list("advisory_id", flat=True)) == [
        "DEBIAN-CVE-2026-41002",
        "GHSA-test-sk01",
    ]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["approver@example.com", "owner@example.com"]
    assert "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2" in mail.outbox[0].body
    delivery = WebhookDelivery.objects.get(event="release.vulnerable")
    assert delivery.payload["release"]["rollout"] == rollout.pk
    assert {f["advisory"] for f in delivery.payload["findings"]} == {"GHSA-test-sk01", "DEBIAN-CVE-2026-41002"}

    client.force_login(viewer)
    assert "2 new vulnerabilities since deploy" in client.get("/").content.decode()
    assert "2 new vulnerabilities since deploy" in client.get(f"/environments/{prod.pk}/").content.decode()

    # A second refresh with nothing new tells nobody again.
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert vulnerabilities.database_refresh()["flagged"] == 0
    assert mail.outbox == []


def test_the_build_page_summarises_by_severity_and_filters_the_table(client, viewer, loaded, build):
    vulnerabilities.scan_build(build)
    client.force_login(viewer)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert 'id="vulnerabilities"' in page
    assert "CVE-2026-41001" in page and "DEBIAN-CVE-2026-41002" in page and "GHSA-test-np01" in page
    assert "?output=vex&amp;download=1" in page
    assert "3 Debian packages of the image (Debian:12)" in page
    narrowed = client.get(f"/builds/{build.pk}/?min_severity=medium&ecosystem=Debian").content.decode()
    assert "DEBIAN-CVE-2026-41002" in narrowed and "CVE-2026-41001" not in narrowed
    assert "No finding matches" in client.get(f"/builds/{build.pk}/?q=tensorflow").content.decode()


def test_the_promotion_page_shows_the_findings_it_adds_and_the_acceptances(
    client, approver, owner, teammate, api, loaded, version, build, prod
):
    vulnerabilities.scan_build(build)
    vulnerabilities.acceptance_create(
        actor=Actor(user=owner),
        environment=prod,
        model=version.model,
        advisory_id="CVE-2026-41001",
        reason="Only our own artifacts are loaded.",
        expires_at=timezone.now() + timedelta(days=7),
    )
    promotion = request_promotion(api, teammate, version, prod).json()["id"]
    client.force_login(approver)
    page = client.get(f"/promotions/{promotion}/").content.decode()
    assert "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2" in page
    assert "accepted by owner until" in page and "Only our own artifacts are loaded." in page


def test_admins_see_the_database_age_and_a_warning_once_it_is_too_old(client, owner, viewer, loaded, settings):
    client.force_login(owner)
    assert "Vulnerability database: 3 advisories from" in client.get("/").content.decode()
    VulnerabilityDatabase.objects.update(
        refreshed_at=timezone.now() - timedelta(hours=settings.VULN_DB_MAX_AGE_HOURS + 1)
    )
    page = client.get("/").content.decode()
    assert "older than the 48 h allowed" in page
    assert api_state(client)["stale"] is True
    client.force_login(viewer)
    assert "Vulnerability database" not in client.get("/").content.decode()
    assert client.get("/api/v1/vulnerability-database/").status_code == 403


def api_state(client):
    return client.get("/api/v1/vulnerability-database/").json()


def test_a_direct_deploy_is_refused_by_the_environments_threshold_and_recorded(
    api, teammate, loaded, version, build, team
):
    staging = EnvironmentFactory(name="staging", team=team, position=20, block_severity="medium")
    vulnerabilities.scan_build(build)
    refused = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": staging.pk}, format="json"
    )
    assert refused.status_code == 400
    assert "CVE-2026-41001 in scikit-learn 1.9.1, high, fixed in 1.9.2 (and 1 more)" in refused.json()["version"][0]
    assert AuditEvent.objects.filter(action="rollout.start", outcome="refused").exists()
    answer = can_i(api, teammate, "deploy", f"version:{version.pk}", staging)
    assert answer["allowed"] is False and "(and 1 more)" in answer["reason"]


def test_an_unscanned_image_is_refused_where_vulnerabilities_block(api, teammate, version, prod):
    refused = request_promotion(api, teammate, version, prod)
    assert refused.status_code == 400
    assert "has not been scanned" in refused.json()["version"][0]


def test_acceptances_are_revoked_by_admins_and_stay_within_the_team(
    api, owner, teammate, stranger, loaded, version, prod
):
    acceptance = vulnerabilities.acceptance_create(
        actor=Actor(user=owner),
        environment=prod,
        model=version.model,
        advisory_id="GHSA-test-sk01",
        reason="Mitigated by the sandbox.",
        expires_at=timezone.now() + timedelta(days=1),
    )
    assert api.as_user(stranger).get("/api/v1/finding-acceptances/").json()["results"] == []
    assert api.as_user(stranger).post(f"/api/v1/finding-acceptances/{acceptance.pk}/revoke/").status_code == 404
    assert api.as_user(teammate).post(f"/api/v1/finding-acceptances/{acceptance.pk}/revoke/").status_code == 403
    revoked = api.as_user(owner).post(f"/api/v1/finding-acceptances/{acceptance.pk}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    assert AuditEvent.objects.filter(action="vulnerability.revoke").count() == 1
    too_long = api.as_user(owner).post(
        "/api/v1/finding-acceptances/",
        {
            "environment": prod.pk,
            "model": version.model.pk,
            "advisory_id": "GHSA-test-sk01",
            "reason": "x",
            "expires_at": (timezone.now() + timedelta(days=400)).isoformat(),
        },
        format="json",
    )
    assert too_long.json() == {"expires_at": ["An acceptance lasts at most 90 days."]}


def test_an_environment_admin_accepts_and_revokes_from_the_environment_page(
    client, owner, teammate, loaded, version, prod
):
    until = (timezone.localtime() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    form = {"model": version.model.pk, "advisory_id": "CVE-2026-41001", "reason": "Sandboxed.", "expires_at": until}
    client.force_login(teammate)
    assert "Accept for this model" not in client.get(f"/environments/{prod.pk}/").content.decode()
    client.post(f"/environments/{prod.pk}/acceptances/", form)
    assert not prod.finding_acceptances.exists()  # a developer may not

    client.force_login(owner)
    page = client.post(f"/environments/{prod.pk}/acceptances/", form, follow=True).content.decode()
    assert "CVE-2026-41001 is accepted for iris in prod until" in page
    acceptance = prod.finding_acceptances.get()
    assert acceptance.reason == "Sandboxed." and acceptance.accepted_by == owner
    page = client.post(f"/environments/{prod.pk}/acceptances/{acceptance.pk}/revoke/", follow=True).content.decode()
    assert "The acceptance of CVE-2026-41001 is revoked." in page
    acceptance.refresh_from_db()
    assert acceptance.revoked_at is not None


def test_site_admins_see_the_database_state_in_the_admin_site(client, site_admin, loaded):
    client.force_login(site_admin)
    page = client.get("/admin/deployments/vulnerabilitydatabase/").content.decode()
    assert str(loaded) in page
    assert client.get("/admin/deployments/findingacceptance/").status_code == 200


def test_each_release_counts_only_the_findings_seen_after_its_own_deploy(model):
    # One image released to staging, then to prod a day later: a finding seen in between is new for
    # staging's release only; one seen after both is new for both. A build with no late finding is not flagged.
    staging, prod = EnvironmentFactory(name="staging", position=20), EnvironmentFactory(name="prod", position=30)
    build = succeeded_build(VersionFactory(model=model, number=1))
    quiet = succeeded_build(VersionFactory(model=model, number=2), "b")
    start = timezone.now() - timedelta(days=3)

    def released(environment, built, days):
        return Rollout.objects.create(
            environment=environment,
            model=model,
            version=built.version,
            build=built,
            image=built.digest_reference,
            state=RolloutState.SUCCEEDED,
            finished_at=start + timedelta(days=days),
        )

    early, late, unaffected = released(staging, build, 0), released(prod, build, 1), released(staging, quiet, 0)
    for advisory_id, days, severity, rank in (
        ("A-1", -1, "critical", 4),
        ("A-2", 0.5, "high", 3),
        ("A-3", 2, "low", 1),
    ):
        Finding.objects.create(
            build=build,
            advisory_id=advisory_id,
            ecosystem="PyPI",
            package="numpy",
            installed_version="1.0",
            severity=severity,
            severity_rank=rank,
            first_seen_at=start + timedelta(days=days),
        )

    flagged = vulnerable_since_release([early, late, unaffected])

    assert (flagged[early.pk].new_findings, flagged[early.pk].worst) == (2, "high")
    assert (flagged[late.pk].new_findings, flagged[late.pk].worst) == (1, "low")
    assert unaffected.pk not in flagged
