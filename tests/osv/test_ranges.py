"""OSV's range rules, with each ecosystem's own version order (PEP 440, Debian)."""

import pytest

from deployments.osv.advisories import parse_advisory
from deployments.osv.matching import Installed, affects, find
from tests.support.osv import CVSS_HIGH, advisory


def entry(*events, ecosystem="PyPI", versions=()):
    return parse_advisory(advisory("X-1", "numpy", *events, ecosystem=ecosystem, versions=versions)).affected[0]


@pytest.mark.parametrize(
    ("version", "affected", "fixed"),
    [
        ("1.23.9", False, ""),
        ("1.24.0", True, "1.24.3"),
        ("1.24.3rc1", True, "1.24.3"),  # a pre-release of the fix is still before it (PEP 440)
        ("1.24.3", False, ""),
        ("1.24.10", False, ""),  # 10 > 3 numerically, though "1.24.10" < "1.24.3" as strings
    ],
)
def test_introduced_and_fixed_follow_pep_440(version, affected, fixed):
    match = affects(entry(("introduced", "1.24.0"), ("fixed", "1.24.3")), version)
    assert (match.affected, match.fixed) == (affected, fixed)


@pytest.mark.parametrize(("version", "affected"), [("0.1", True), ("2.0.0", True), ("2.0.1", False), ("3", False)])
def test_last_affected_includes_that_version_and_nothing_after(version, affected):
    match = affects(entry(("introduced", "0"), ("last_affected", "2.0.0")), version)
    assert match.affected is affected
    assert match.fixed == ""  # no fix is known


@pytest.mark.parametrize(
    ("version", "affected", "fixed"),
    [("1.0", True, "1.2"), ("1.2", False, ""), ("2.0", True, "2.1"), ("2.1.0", False, ""), ("0.9", False, "")],
)
def test_several_introduced_fixed_pairs_in_one_range(version, affected, fixed):
    match = affects(entry(("introduced", "1.0"), ("fixed", "1.2"), ("introduced", "2.0"), ("fixed", "2.1")), version)
    assert (match.affected, match.fixed) == (affected, fixed)


def test_unordered_events_are_sorted_before_they_are_walked():
    match = affects(entry(("fixed", "2.1"), ("introduced", "2.0"), ("introduced", "0"), ("fixed", "1.2")), "1.1")
    assert (match.affected, match.fixed) == (True, "1.2")


def test_explicit_versions_match_exactly_even_where_pep_440_cannot_order_them():
    affected = entry(versions=("1.0-custom-build",))
    assert affects(affected, "1.0-custom-build").affected
    assert not affects(affected, "1.0").affected


@pytest.mark.parametrize(
    ("version", "affected", "fixed"),
    [
        ("2.36-9+deb12u4", True, "2.36-9+deb12u10"),
        ("2.36-9+deb12u9", True, "2.36-9+deb12u10"),
        ("2.36-9+deb12u10", False, ""),  # u10 > u9, though not as strings
        ("2.36-9+deb12u10~bpo1", True, "2.36-9+deb12u10"),  # a tilde sorts before everything
        ("1:2.0-1", False, ""),  # an epoch outranks any upstream version
    ],
)
def test_debian_versions_are_ordered_as_dpkg_orders_them(version, affected, fixed):
    match = affects(entry(("introduced", "0"), ("fixed", "2.36-9+deb12u10"), ecosystem="Debian:12"), version)
    assert (match.affected, match.fixed) == (affected, fixed)


def test_a_version_pep_440_cannot_read_is_not_matched_by_ranges():
    assert not affects(entry(("introduced", "0")), "not a version!").affected


def test_find_reports_the_advisory_the_package_and_the_fix():
    numpy = parse_advisory(
        advisory(
            "GHSA-aaaa", "NumPy", ("introduced", "0"), ("fixed", "1.24.3"), aliases=["CVE-2026-1000"], cvss=CVSS_HIGH
        )
    )
    other = parse_advisory(advisory("GHSA-bbbb", "numpy", ("introduced", "2.0")))
    candidates = {("PyPI", "numpy"): [(numpy, numpy.affected[0]), (other, other.affected[0])]}
    findings = find([Installed("PyPI", "numpy", "1.24.0"), Installed("PyPI", "pandas", "2.0")], candidates)
    assert [
        (f.advisory_id, f.aliases, f.package, f.installed_version, f.fixed_version, f.severity) for f in findings
    ] == [("GHSA-aaaa", ("CVE-2026-1000",), "numpy", "1.24.0", "1.24.3", "high")]
