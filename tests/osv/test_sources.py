"""Loading an OSV database from a folder, per-ecosystem all.zip archives, or an HTTP(S) URL."""

import functools
import http.server
import logging
import threading

import pytest

from deployments.osv.dpkg import debian_ecosystem, parse_status
from deployments.osv.sources import SourceUnavailable, describe, load
from tests.support.osv import CVSS_CRITICAL, CVSS_HIGH, advisory, write_folder, write_zip

PYPI = [
    advisory("GHSA-sk-1", "scikit-learn", ("introduced", "0"), ("fixed", "9.0"), aliases=["CVE-2026-0001"]),
    advisory("PYSEC-2", "numpy", ("introduced", "1.0"), ("last_affected", "1.24.0"), cvss=CVSS_HIGH),
]
DEBIAN = [
    advisory("DEBIAN-CVE-2026-0003", "glibc", ("introduced", "0"), ("fixed", "2.36-9+deb12u99"), ecosystem="Debian:12"),
    advisory("DSA-4", "openssl", ("introduced", "0"), ecosystem="Debian:11", urgency="high"),
]
MALFORMED = [
    "{not json",
    '{"id": "NO-MODIFIED", "affected": []}',
    '{"id": "BAD-RANGE", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "PyPI", '
    '"name": "x"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "1.0"}]}]}]}',
]


def ids(result):
    return sorted(a.id for a in result.advisories)


def test_a_folder_of_json_loads_and_malformed_advisories_are_skipped_with_a_warning(tmp_path, caplog):
    folder = write_folder(tmp_path / "osv", PYPI + DEBIAN, malformed=MALFORMED)
    with caplog.at_level(logging.WARNING, logger="deployments.osv.sources"):
        result = load(str(folder))
    assert ids(result) == ["DEBIAN-CVE-2026-0003", "DSA-4", "GHSA-sk-1", "PYSEC-2"]
    assert len(result.skipped) == 3
    assert any("BROKEN-1.json" in s and "'modified'" in s for s in result.skipped)
    assert any("BROKEN-2.json" in s and "no 'introduced' event" in s for s in result.skipped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(w.startswith("skipped a malformed OSV advisory") for w in warnings)


def test_per_ecosystem_all_zip_archives_in_a_mirrored_folder(tmp_path):
    write_zip(tmp_path / "mirror" / "PyPI" / "all.zip", PYPI)
    write_zip(tmp_path / "mirror" / "Debian" / "all.zip", DEBIAN, malformed=MALFORMED[:1])
    result = load(str(tmp_path / "mirror"))
    assert ids(result) == ["DEBIAN-CVE-2026-0003", "DSA-4", "GHSA-sk-1", "PYSEC-2"]
    assert result.skipped == [
        "Debian/all.zip/BROKEN-0.json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    ]


def test_withdrawn_advisories_are_counted_not_loaded(tmp_path):
    gone = advisory("GHSA-gone", "numpy", ("introduced", "0"), withdrawn="2026-11-02T00:00:00Z")
    result = load(str(write_folder(tmp_path / "osv", [*PYPI, gone])))
    assert ids(result) == ["GHSA-sk-1", "PYSEC-2"]
    assert result.withdrawn == 1


def test_only_pypi_and_debian_entries_are_kept(tmp_path):
    npm = advisory("GHSA-npm", "left-pad", ("introduced", "0"), ecosystem="npm")
    result = load(str(write_folder(tmp_path / "osv", [npm, *PYPI])))
    assert [a.affected for a in result.advisories if a.id == "GHSA-npm"] == [()]


def test_severity_comes_from_cvss_then_the_advisory_label_then_debian_urgency(tmp_path):
    raws = [
        advisory("A", "x", ("introduced", "0"), cvss=CVSS_CRITICAL, label="LOW"),
        advisory("B", "x", ("introduced", "0"), label="MODERATE"),
        advisory("C", "x", ("introduced", "0")),
    ]
    result = load(str(write_folder(tmp_path / "osv", raws + DEBIAN)))
    by_id = {a.id: a for a in result.advisories}
    assert (by_id["A"].severity, by_id["A"].score) == ("critical", 9.8)
    assert (by_id["B"].severity, by_id["B"].score) == ("medium", None)
    assert by_id["C"].severity == "unknown"
    assert by_id["DSA-4"].affected[0].severity == "high"


def test_a_missing_folder_or_a_broken_zip_is_an_error_not_an_empty_database(tmp_path):
    with pytest.raises(SourceUnavailable, match="neither a folder"):
        load(str(tmp_path / "nowhere"))
    with pytest.raises(SourceUnavailable, match="no OSV"):
        load(str((tmp_path / "empty").mkdir() or tmp_path / "empty"))
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(SourceUnavailable, match="not a readable zip"):
        load(str(tmp_path / "bad.zip"))


@pytest.fixture
def http_folder(tmp_path):
    """Serves tmp_path/www over HTTP on 127.0.0.1, as a mirror of OSV's bucket would."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_an_http_url_laid_out_like_osvs_bucket(http_folder):
    root, url = http_folder
    write_zip(root / "osv" / "PyPI" / "all.zip", PYPI)
    write_zip(root / "osv" / "Debian" / "all.zip", DEBIAN)
    assert ids(load(f"{url}/osv")) == ["DEBIAN-CVE-2026-0003", "DSA-4", "GHSA-sk-1", "PYSEC-2"]
    assert ids(load(f"{url}/osv/PyPI/all.zip")) == ["GHSA-sk-1", "PYSEC-2"]


def test_an_unreachable_url_names_the_address_without_credentials(http_folder):
    _, url = http_folder
    with pytest.raises(SourceUnavailable, match=r"/missing/PyPI/all.zip answered 404"):
        load(f"{url}/missing")
    assert describe("https://user:secret@mirror.example/osv") == "https://mirror.example/osv"


STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl (3.0.15-1~deb12u1)
Version: 3.0.15-1~deb12u1+b1

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
"""


def test_dpkg_status_names_each_package_with_its_source_package_and_version():
    packages = parse_status(STATUS)
    assert [(p.name, p.version, p.source, p.source_version) for p in packages] == [
        ("libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4"),
        ("libssl3", "3.0.15-1~deb12u1+b1", "openssl", "3.0.15-1~deb12u1"),
        ("zlib1g", "1:1.2.13.dfsg-1", "zlib1g", "1:1.2.13.dfsg-1"),
    ]


def test_the_debian_release_is_read_from_os_release():
    assert debian_ecosystem('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n') == "Debian:12"
    assert debian_ecosystem("ID=alpine\nVERSION_ID=3.19.1\n") == ""
