"""Each command of the installed CLI against the live server, and each exit code it promises.

Builds and rollouts that need a worker are in test_pipeline.py; here the builds are rows as a
worker leaves them, so these tests run in seconds.
"""

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from deployments.models import Build, PromotionRequest, Rollout, RolloutState
from registry.models import ModelVersion, RegisteredModel
from registry.services import version_inspect
from serving import contract
from tests.conftest import member
from tests.support.cli import FlakyProxy
from tests.support.factories import (
    BuildFactory,
    EnvironmentFactory,
    MembershipFactory,
    ModelFactory,
    RegistryFactory,
    VersionFactory,
    add_log_lines,
    succeeded_build,
)
from tests.support.services import free_port, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def page_shows(user, url: str, *texts: str) -> None:
    """The page behind a printed address answers, to that user, and shows what the CLI showed."""
    client = Client()
    client.force_login(user)
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
    assert response.status_code == 200, f"{url}: {response.status_code}"
    body = response.content.decode()
    for text in texts:
        assert text in body, f"{url} does not show {text!r}"


@pytest.fixture
def stages(team):
    RegistryFactory()
    dev = EnvironmentFactory(name="dev", position=10, grants={team: Role.ADMIN})
    prod = EnvironmentFactory(name="prod", position=30, protected=True, required_approvals=2, grants={team: Role.ADMIN})
    return dev, prod


@pytest.fixture
def built(model):
    version = VersionFactory(model=model, number=1, label="rc1")
    succeeded_build(version)
    return version


# -- installing --------------------------------------------------------------------------------


def test_the_installed_cli_needs_no_django_and_documents_its_exit_codes(cli_bin):
    no_django = subprocess.run([str(cli_bin / "python"), "-c", "import django"], capture_output=True, text=True)
    assert "No module named 'django'" in no_django.stderr
    shown = subprocess.run([str(cli_bin / "slipway"), "--help"], capture_output=True, text=True)
    assert shown.returncode == 0
    for line in ("0  done", "1  the work failed", "2  usage error", "3  timed out", "4  refused", "5  server or"):
        assert line in shown.stdout
    assert subprocess.run([str(cli_bin / "slipway"), "--version"], capture_output=True, text=True).stdout.strip() == (
        "slipway, version 0.1.0"
    )


def test_the_framework_guessed_from_a_file_name_follows_the_platforms_suffixes(cli_bin):
    program = "import json; from slipway_cli.commands.versions import FRAMEWORK_BY_SUFFIX as m; print(json.dumps(m))"
    guessed = json.loads(subprocess.check_output([str(cli_bin / "python"), "-c", program], text=True))
    expected = {
        **dict.fromkeys(contract.SKLEARN_SUFFIXES, "sklearn"),
        **dict.fromkeys(contract.ONNX_SUFFIXES, "onnx"),
        **dict.fromkeys(contract.PYTHON_SUFFIXES, "python"),
    }
    assert guessed == expected


# -- configuration -------------------------------------------------------------------------------


def test_login_keeps_the_token_readable_only_by_its_owner_and_later_commands_use_it(
    slipway, token_of, teammate, model, live_server, tmp_path
):
    cli = slipway()  # no SLIPWAY_URL / SLIPWAY_TOKEN from here on
    cli = cli.with_env(SLIPWAY_URL="", SLIPWAY_TOKEN="")
    missing = cli("models", "list")
    assert missing.code == 2
    assert "SLIPWAY_URL and SLIPWAY_TOKEN not set" in missing.stderr

    refused = cli("login", live_server.url, "--token-stdin", stdin="slw_not-a-real-token\n")
    assert refused.code == 4, refused
    config = tmp_path / "home" / ".config" / "slipway" / "config.json"
    assert not config.exists()

    signed = cli("login", live_server.url, "--token-stdin", stdin=token_of(teammate) + "\n")
    assert signed.code == 0, signed
    assert "your teams: vision" in signed.stdout
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    assert oct(config.parent.stat().st_mode & 0o777) == "0o700"
    listed = cli("models", "list", "--json")
    assert listed.code == 0, listed
    assert [m["name"] for m in listed.json()] == ["iris"]

    config.chmod(0o644)  # someone loosened it: the token is no longer trusted to be private
    loose = cli("models", "list")
    assert loose.code == 2 and "chmod 600" in loose.stderr
    config.chmod(0o600)

    assert cli("logout").code == 0
    assert not config.exists()
    assert cli("models", "list").code == 2


def test_the_environment_wins_over_the_kept_login(slipway, token_of, teammate, stranger, model, live_server):
    cli = slipway(token_of(stranger))
    assert cli("login", live_server.url, "--token-stdin", stdin=token_of(stranger) + "\n").code == 0
    mine = cli("models", "list", "--json", SLIPWAY_TOKEN=token_of(teammate))
    assert [m["name"] for m in mine.json()] == ["iris"]
    theirs = cli("models", "list", "--json")
    assert theirs.json() == []  # the stranger's own token: nothing of vision


def test_a_kept_token_is_never_sent_to_another_server(slipway, token_of, teammate, model, live_server):
    cli = slipway().with_env(SLIPWAY_URL="", SLIPWAY_TOKEN="")
    assert cli("login", live_server.url, "--token-stdin", stdin=token_of(teammate) + "\n").code == 0
    assert cli("models", "list").code == 0
    elsewhere = cli("models", "list", SLIPWAY_URL=f"http://127.0.0.1:{free_port()}")
    assert elsewhere.code == 2 and "SLIPWAY_TOKEN not set" in elsewhere.stderr


@pytest.fixture
def not_slipway():
    """A web server that is not Slipway: a page for everything, and a redirect under /moved."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/moved"):
                self.send_response(301)
                self.send_header("Location", "https://slipway.example.com/api/v1/models/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_is_not_slipway_is_a_usage_error(slipway, not_slipway):
    page = slipway("slw_x", SLIPWAY_URL=not_slipway)("models", "list")
    assert page.code == 2 and "is http://127.0.0.1" in page.stderr and "a Slipway server?" in page.stderr
    moved = slipway("slw_x", SLIPWAY_URL=f"{not_slipway}/moved")("models", "list")
    assert moved.code == 2 and "redirected to https://slipway.example.com/api/v1/models/" in moved.stderr


# -- models ----------------------------------------------------------------------------------------


def test_models_create_and_list_print_json_and_the_page_that_shows_them(slipway, token_of, teammate, model):
    cli = slipway(token_of(teammate))
    created = cli("models", "create", "fraud", "--task", "scoring", "--no-auto-build", "--json")
    assert created.code == 0, created
    body = created.json()
    stored = RegisteredModel.objects.get(pk=body["id"])
    assert (stored.team.slug, stored.name, stored.task, stored.auto_build) == ("vision", "fraud", "scoring", False)
    page_shows(teammate, body["page_url"], "fraud", "scoring")
    assert "page: " in created.stderr  # stdout is JSON only

    listed = cli("models", "list")
    assert listed.code == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines() if line.startswith("vision/")}
    assert set(rows) == {"vision/fraud", "vision/iris"}
    assert "scoring" in rows["vision/fraud"] and " no " in rows["vision/fraud"]
    assert listed.stdout.rstrip().endswith("/models/")

    taken = cli("models", "create", "fraud")
    assert taken.code == 2
    assert "name" in taken.stderr and "already" in taken.stderr


def test_models_create_asks_for_the_team_when_you_are_in_several(slipway, token_of, teammate, other_team):
    MembershipFactory(team=other_team, user=teammate, role=Role.DEVELOPER)
    cli = slipway(token_of(teammate))
    ambiguous = cli("models", "create", "fraud")
    assert ambiguous.code == 2 and "--team" in ambiguous.stderr and "other, vision" in ambiguous.stderr
    assert cli("models", "create", "fraud", "--team", "other").code == 0
    assert RegisteredModel.objects.get(name="fraud").team == other_team


# -- uploads ---------------------------------------------------------------------------------------


def test_a_100_mb_upload_shows_its_progress_and_arrives_intact(slipway, token_of, teammate, team, tmp_path):
    ModelFactory(team=team, name="big", auto_build=False)
    artifact = tmp_path / "weights.joblib"
    digest = hashlib.sha256()
    with artifact.open("wb") as handle:
        for _ in range(100):
            chunk = os.urandom(1024 * 1024)
            digest.update(chunk)
            handle.write(chunk)
    cli = slipway(token_of(teammate))
    pushed = cli("versions", "push", str(artifact), "--model", "big", "--metrics", '{"auc": 0.9}', "--json")
    assert pushed.code == 0, pushed
    progress = re.findall(r"Uploading weights\.joblib: (\d+)% \(([\d.]+) MB of 104\.9 MB\)", pushed.stderr)
    assert [int(p) for p, _ in progress] == list(range(0, 101, 10))
    assert progress[-1][1] == "104.9"
    version = ModelVersion.objects.get(pk=pushed.json()["version"]["id"])
    assert version.artifact_size == 100 * 1024 * 1024
    assert version.artifact_sha256 == digest.hexdigest()
    assert version.framework == "sklearn" and version.metrics == {"auc": 0.9}
    assert pushed.json()["build"] is None  # auto build is off for this model
    page_shows(teammate, pushed.json()["version"]["page_url"], "big", "v1")


def test_a_progress_bar_is_drawn_on_a_terminal(slipway, token_of, teammate, team, tmp_path):
    ModelFactory(team=team, name="big", auto_build=False)
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(os.urandom(3 * 1024 * 1024))
    cli = slipway(token_of(teammate))
    # `script` gives the CLI a pseudo-terminal, as a person at a shell has.
    command = " ".join(["slipway", "versions", "push", str(artifact), "--model", "big", "--framework", "custom"])
    shown = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        env=cli.environment(COLUMNS="120"),
        cwd=tmp_path,
        timeout=120,
    )
    screen = shown.stdout
    assert "Uploading model.onnx" in screen and "3.1/3.1 MB" in screen, screen
    assert "━" in screen  # the bar itself, not the plain lines a CI log gets
    assert "10% (" not in screen


def test_bad_options_are_refused_before_anything_is_uploaded(slipway, token_of, teammate, model, tmp_path):
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"x" * 1000)
    cli = slipway(token_of(teammate))
    bad_json = cli("versions", "push", str(artifact), "--model", "iris", "--metrics", "{accuracy: 1}")
    assert bad_json.code == 2
    assert "--metrics" in bad_json.stderr and "not valid JSON" in bad_json.stderr
    no_model = cli("versions", "push", str(artifact))
    assert no_model.code == 2 and "--model" in no_model.stderr
    unknown = cli("versions", "push", str(artifact), "--model", "nope")
    assert unknown.code == 2 and "no model 'nope'" in unknown.stderr
    no_file = cli("versions", "push", str(tmp_path / "missing.joblib"), "--model", "iris")
    assert no_file.code == 2 and "does not exist" in no_file.stderr
    unknown_kind = tmp_path / "weights.bin"
    unknown_kind.write_bytes(b"x")
    guess = cli("versions", "push", str(unknown_kind), "--model", "iris")
    assert guess.code == 2 and "--framework" in guess.stderr
    assert cli("deploy").code == 2
    assert cli("no-such-command").code == 2
    assert not ModelVersion.objects.exists()


def test_a_request_the_server_finds_invalid_exits_2_with_its_field_and_reason(
    slipway, token_of, teammate, built, tmp_path
):
    artifact = tmp_path / "model.joblib"
    artifact.write_bytes(b"x")
    cli = slipway(token_of(teammate))
    taken = cli("versions", "push", str(artifact), "--model", "iris", "--label", "rc1")
    assert taken.code == 2
    assert "label: Version label 'rc1' is already used in this model." in taken.stderr


# -- exit code 4: refused --------------------------------------------------------------------------


def test_a_wrong_token_and_a_missing_role_are_refused_with_the_servers_reason(
    slipway, token_of, viewer, teammate, built, stages
):
    wrong = slipway("slw_wrong")("models", "list")
    assert wrong.code == 4
    assert "not signed in" in wrong.stderr and "Invalid" in wrong.stderr

    as_viewer = slipway(token_of(viewer))("deploy", "iris:1", "--env", "dev")
    assert as_viewer.code == 4
    assert "needs the developer role in team 'vision'; you are a viewer" in as_viewer.stderr

    protected = slipway(token_of(teammate))("deploy", "iris:1", "--env", "prod")
    assert protected.code == 4
    assert "'prod' is protected: request a promotion" in protected.stderr

    read_only = slipway(token_of(teammate, scopes=["read"]))("deploy", "iris:1", "--env", "dev")
    assert read_only.code == 4 and "lacks the 'deploy' scope" in read_only.stderr
    assert not Rollout.objects.exists()


def test_another_teams_objects_are_not_found(slipway, token_of, stranger, built):
    cli = slipway(token_of(stranger))
    build = Build.objects.get()
    logs = cli("builds", "logs", str(build.pk))
    assert logs.code == 2 and "not found" in logs.stderr
    deploy = cli("deploy", str(built.pk), "--env", "dev")
    assert deploy.code == 2 and "not found" in deploy.stderr


def test_not_found_says_what_the_server_did_not_find_not_that_the_endpoint_is_missing(slipway, token_of, teammate):
    answer = slipway(token_of(teammate))("can-i", "approve", "promotion:987654")
    assert answer.code == 2, answer
    assert "No promotion 987654 in your teams" in answer.stderr
    assert "/can-i/ does not exist" not in answer.stderr


# -- exit code 5: server and network errors, after retries -----------------------------------------


def test_an_unreachable_server_is_retried_then_exits_5(slipway, token_of, teammate):
    cli = slipway(token_of(teammate), SLIPWAY_URL=f"http://127.0.0.1:{free_port()}", SLIPWAY_RETRIES="2")
    down = cli("models", "list")
    assert down.code == 5
    assert down.stderr.count("retrying in") == 2
    assert "gave up after 3 attempts" in down.stderr


def test_transient_answers_are_retried_with_backoff_and_a_post_lands_once(
    slipway, token_of, teammate, team, live_server
):
    proxy = FlakyProxy(live_server.url, failures=2, status=503, methods=("POST",))
    try:
        cli = slipway(token_of(teammate), SLIPWAY_URL=proxy.url)
        created = cli("models", "create", "fraud", "--team", "vision", "--json")
        assert created.code == 0, created
        assert created.stderr.count("the server answered 503") == 2
        posts = [status for method, path, status in proxy.seen if method == "POST"]
        assert posts == [503, 503, 201]
        assert RegisteredModel.objects.filter(name="fraud").count() == 1
    finally:
        proxy.close()


def test_a_post_whose_answer_is_lost_is_not_repeated(slipway, token_of, teammate, team, live_server):
    proxy = FlakyProxy(live_server.url, failures=1, status=None, methods=("POST",))
    try:
        lost = slipway(token_of(teammate), SLIPWAY_URL=proxy.url)("models", "create", "fraud", "--team", "vision")
        assert lost.code == 5
        assert "may or may not have been applied" in lost.stderr
        assert [m for m, _, _ in proxy.seen if m == "POST"] == ["POST"]
    finally:
        proxy.close()


def test_a_server_failing_every_time_exits_5_after_the_retries(slipway, token_of, teammate, team, live_server):
    proxy = FlakyProxy(live_server.url, failures=100, status=500)
    try:
        failing = slipway(token_of(teammate), SLIPWAY_URL=proxy.url, SLIPWAY_RETRIES="3")("models", "list")
        assert failing.code == 5
        assert len(proxy.seen) == 4 and "gave up after 4 attempts" in failing.stderr
    finally:
        proxy.close()


# -- promotions: exit codes 1 (rejected) and 3 (timed out) -----------------------------------------


def test_promote_waits_shows_who_approved_and_times_out_with_3(slipway, token_of, teammate, approver, built, stages):
    cli = slipway(token_of(teammate))
    waited = cli("promote", "iris:1", "--env", "prod", "--reason", "pipeline #812", "--wait", "--timeout", "2")
    assert waited.code == 3, waited
    promotion = PromotionRequest.objects.get()
    assert f"Promotion #{promotion.pk}: vision/iris v1 to prod, pending, 0 of 2 approvals" in waited.stdout
    assert "still pending, 0 of 2 approvals (nobody yet)" in waited.stderr
    assert f"/promotions/{promotion.pk}/" in waited.stderr
    assert promotion.state == "pending"  # it stays open: a later approval still deploys it

    approved = slipway(token_of(approver, scopes=["read", "approve"]))(
        "approve", str(promotion.pk), "--comment", "numbers look right", "--json"
    )
    assert approved.code == 0, approved
    assert approved.json()["approvals_counted"] == 1
    assert approved.json()["approvals"][0]["approver"] == "approver"

    again = cli("promote", "iris:1", "--env", "prod", "--reason", "retry", "--wait", "--timeout", "1")
    assert again.code == 2 and "already has a pending promotion" in again.stderr


def test_a_rejected_promotion_ends_the_wait_with_1_and_the_reason(slipway, token_of, team, teammate, built, stages):
    second = member(team, "second", Role.APPROVER)
    third = member(team, "third", Role.APPROVER)
    requester = slipway(token_of(teammate))
    waiting = requester.start("promote", "iris:1", "--env", "prod", "--reason", "ship it", "--wait")
    promotion = wait_until(lambda: PromotionRequest.objects.first(), timeout=30, message="the promotion request")

    as_second = slipway(token_of(second, scopes=["read", "approve"]))
    as_third = slipway(token_of(third, scopes=["read", "approve"]))
    assert as_second("approve", str(promotion.pk), "--comment", "fine by me").code == 0
    no_comment = as_third("reject", str(promotion.pk))
    assert no_comment.code == 2 and "comment: Say why you reject it" in no_comment.stderr
    assert as_third("reject", str(promotion.pk), "--comment", "latency regressed 20%").code == 0

    done = requester.finish(waiting, "promote --wait")
    assert done.code == 1, done
    assert "approved by second: fine by me  [1 of 2 approvals (second)]" in done.stdout
    assert "rejected by third: latency regressed 20%" in done.stdout
    assert f"promotion #{promotion.pk} rejected" in done.stderr

    late = as_second("approve", str(promotion.pk))
    assert late.code == 2 and "can no longer be decided" in late.stderr


def test_nobody_approves_their_own_request(slipway, token_of, approver, built, stages):
    # An approver, who may approve others' requests: the role is not what refuses it.
    cli = slipway(token_of(approver, scopes=["read", "deploy", "approve"]))
    requested = cli("promote", "iris:1", "--env", "prod", "--reason", "ship it", "--json")
    assert requested.code == 0, requested
    own = cli("approve", str(requested.json()["promotion"]["id"]))
    assert own.code == 4
    assert "you requested this promotion; someone else must approve it" in own.stderr


# -- can-i -----------------------------------------------------------------------------------------


def test_can_i_answers_with_the_reason_and_exits_4_when_not(slipway, token_of, teammate, viewer, built, stages):
    mine = slipway(token_of(teammate))
    yes = mine("can-i", "deploy", "model:iris", "--env", "dev")
    assert yes.code == 0, yes
    assert yes.stdout.startswith("yes: developer in team 'vision'")
    assert "/models/vision/iris/" in yes.stdout
    protected = mine("can-i", "deploy", "version:iris:1", "--env", "prod", "--json")
    assert protected.code == 4
    assert protected.json()["allowed"] is False and "protected" in protected.json()["reason"]

    theirs = slipway(token_of(viewer))("can-i", "upload_version", "team:vision")
    assert theirs.code == 4
    assert "needs the developer role in team 'vision'; you are a viewer" in theirs.stderr
    page_shows(viewer, theirs.stdout.split("page: ")[1].strip(), "vision")

    assert mine("can-i", "deploy", "iris").code == 2
    assert mine("can-i", "fly", "team:vision").code == 2


# -- builds logs, releases -------------------------------------------------------------------------


def test_builds_logs_prints_every_line_once_in_order(slipway, token_of, teammate, model):
    build = BuildFactory(version=VersionFactory(model=model, number=1), state="failed", finished_at=timezone.now())
    add_log_lines(build, 2500, text="step {n} [bold]not markup[/bold]")
    cli = slipway(token_of(teammate))
    shown = cli("builds", "logs", str(build.pk))
    assert shown.code == 0
    assert shown.stdout.splitlines() == [f"step {n} [bold]not markup[/bold]" for n in range(1, 2501)]
    assert f"/builds/{build.pk}/" in shown.stderr
    as_json = cli("builds", "logs", str(build.pk), "--json")
    assert [json.loads(line)["seq"] for line in as_json.stdout.splitlines()] == list(range(1, 2501))
    followed = cli("builds", "logs", str(build.pk), "--follow")
    assert followed.code == 1  # the build failed: so does following it
    assert followed.stdout.count("\n") == 2500
    page_shows(teammate, f"http://x/builds/{build.pk}/", "Failed")


def test_a_log_read_through_failing_answers_still_has_each_line_once_in_order(
    slipway, token_of, teammate, model, live_server
):
    build = BuildFactory(version=VersionFactory(model=model, number=1), state="succeeded", finished_at=timezone.now())
    add_log_lines(build, 3500)
    # The build, the first window, then two failures in the middle of the log, as a restarting server gives.
    proxy = FlakyProxy(live_server.url, failures=2, status=503, methods=("GET",), passing=2)
    try:
        shown = slipway(token_of(teammate), SLIPWAY_URL=proxy.url)("builds", "logs", str(build.pk), "--follow")
    finally:
        proxy.close()
    assert shown.code == 0, shown
    assert shown.stderr.count("the server answered 503") == 2
    assert shown.stdout.splitlines() == [f"line {n}" for n in range(1, 3501)]
    assert [status for _, path, status in proxy.seen if "/log/" in path] == [200, 503, 503, 200, 200, 200]


def test_releases_say_what_ran_then_and_who_approved(slipway, token_of, teammate, built, stages):
    dev, _ = stages
    build = Build.objects.get()
    finished = timezone.now() - timedelta(hours=1)
    rollout = Rollout.objects.create(
        environment=dev,
        model=built.model,
        version=built,
        build=build,
        image=build.digest_reference,
        requested_by=teammate,
        state=RolloutState.SUCCEEDED,
        started_at=finished,
        finished_at=finished,
    )
    cli = slipway(token_of(teammate))
    now = cli("releases", "dev", "--json")
    assert now.code == 0, now
    assert [(r["id"], r["model"], r["version_number"]) for r in now.json()] == [(rollout.pk, "iris", 1)]
    table = cli("releases", "dev")
    row = next(line for line in table.stdout.splitlines() if line.startswith("vision/iris"))
    assert row.split()[:3] == ["vision/iris", "v1", "succeeded"]
    assert build.image_digest[:19] in row and "teammate" in row
    assert now.json()[0]["image"] == build.digest_reference
    page_shows(teammate, table.stdout.split("page: ")[1].strip(), "iris")

    before = (finished - timedelta(minutes=5)).isoformat()
    then = cli("releases", "dev", "--at", before)
    assert then.code == 0 and "nothing ran there" in then.stdout
    bad = cli("releases", "dev", "--at", "last tuesday")
    assert bad.code == 2 and "is not an ISO 8601 date" in bad.stderr


def test_push_wait_waits_for_the_servers_inspection_and_exits_1_when_it_rejects(
    slipway, token_of, teammate, team, tmp_path, settings
):
    settings.INLINE_INSPECTION_BYTES = 10  # every archive goes to a worker: played here by a thread
    ModelFactory(team=team, name="big", auto_build=False)
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as archive:
        info = tarfile.TarInfo("../outside.py")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"x\n"))

    def worker():
        try:
            version = wait_until(lambda: ModelVersion.objects.filter(model__name="big").first(), timeout=60)
            time.sleep(1)  # the CLI is waiting by now
            version_inspect(version_id=version.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    cli = slipway(token_of(teammate))
    pushed = cli("versions", "push", str(artifact), "--model", "big", "--framework", "python", "--wait")
    thread.join()
    assert pushed.code == 1, pushed
    assert "The server inspects the artifact before it builds" in pushed.stdout + pushed.stderr
    assert "the artifact was rejected: The archive entry '../outside.py' escapes its folder" in pushed.stderr
