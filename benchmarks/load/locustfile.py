"""What 50 people and scripts do at once, for Locust. Reads the fixture seed.py wrote ($SLIPWAY_LOAD_FIXTURE).

Four kinds of simulated users, by weight:
- a team member (developer, approver or viewer) browsing: the overview, a model, a build page and an
  environment page (signed in through the form);
- a CI script following a build log with `after`, page by page, as the CLI does;
- a CI script uploading a version (a fresh 1 MiB artifact);
- an approver reading the inbox and a request, then approving it with the digest it saw.

Requests are named by route (not by id), so the report has one line per endpoint. Every user first
waits until all have started (the browsers signed in); then the load runs for $SLIPWAY_LOAD_SECONDS and
Locust stops. This file runs in Locust's own virtualenv and imports nothing of the platform.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from pathlib import Path

import gevent
import gevent.event
from locust import HttpUser, between, events, task
from locust.exception import StopUser

FIXTURE = json.loads(open(os.environ["SLIPWAY_LOAD_FIXTURE"]).read())  # noqa: SIM115 - read once
MEASURED_SECONDS = float(os.environ["SLIPWAY_LOAD_SECONDS"])
RESULT = Path(os.environ["SLIPWAY_LOAD_RESULT"])  # what run.py reports, written as Locust quits
SIGN_IN_LIMIT = 180  # seconds the users wait for each other to sign in, at most
SIGN_IN = "sign-in:"  # run.py reports these requests apart from the endpoints under load
RACED = re.compile(r"can no longer be decided|already decided on this request")
APPROVER_SEATS = itertools.count()
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
STARTED = time.monotonic()
ALL_SIGNED_IN = gevent.event.Event()
arrived = itertools.count(1)
PHASE: dict = {"late": False}


def wait_for_everyone(environment) -> None:
    """Each simulated user, after its own start (a sign-in, for browsers), waits for all the others: the
    sign-ins (a deliberately slow password hash each, all at once) compete with no page, and the
    measured MEASURED_SECONDS begin when the last user is ready."""
    if next(arrived) >= environment.runner.target_user_count:
        release(environment)
    if not ALL_SIGNED_IN.wait(timeout=SIGN_IN_LIMIT):
        PHASE["late"] = True  # someone never got here: go on rather than wait forever, and say so
        release(environment)


def release(environment) -> None:
    if ALL_SIGNED_IN.is_set():
        return
    ALL_SIGNED_IN.set()
    PHASE["ready_after"] = time.monotonic() - STARTED
    gevent.spawn_later(MEASURED_SECONDS, environment.runner.quit)


@events.quitting.add_listener
def write_result(environment, **kwargs) -> None:
    # From the final figures (Locust's CSV files are rewritten every second and may miss the last one).
    stats = environment.stats
    endpoints = [
        {
            "method": entry.method,
            "name": entry.name,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            **{f"p{q}": entry.get_response_time_percentile(q / 100) for q in (50, 95, 99)},
        }
        for entry in sorted(stats.entries.values(), key=lambda entry: (entry.name, entry.method or ""))
    ]
    failures = [
        {"method": error.method, "name": error.name, "error": str(error.error), "count": error.occurrences}
        for error in stats.errors.values()
    ]
    exceptions = [{"count": e["count"], "error": e["msg"]} for e in environment.runner.exceptions.values()]
    RESULT.write_text(json.dumps({**PHASE, "endpoints": endpoints, "failures": failures, "exceptions": exceptions}))


class Browsing(HttpUser):
    weight = 5
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        # Once per simulated person, as a browser keeps its session. Named apart ("sign-in: ..."): its
        # cost is the password hash (PBKDF2, deliberately slow), reported beside the pages, not among them.
        people = FIXTURE["developers"] + FIXTURE["approvers"][:-1] + [FIXTURE["viewer"]]
        person = random.choice(people)  # noqa: S311 - not security
        page = self.client.get("/login/", name=f"{SIGN_IN} /login/")
        token = CSRF.search(page.text)
        with self.client.post(
            "/login/",
            {
                "username": person["username"],
                "password": person["password"],
                "csrfmiddlewaretoken": token.group(1) if token else "",
            },
            headers={"Referer": f"{self.host}/login/"},
            name=f"{SIGN_IN} /login/ (post)",
            allow_redirects=False,
            catch_response=True,
        ) as answer:
            signed_in = answer.status_code == 302 and "sessionid" in self.client.cookies
            if not signed_in:
                answer.failure(f"not signed in: {answer.status_code}")
        wait_for_everyone(self.environment)
        if not signed_in:
            raise StopUser  # its pages would all be the sign-in page, measured under their names

    def page(self, path: str, name: str) -> None:
        # A redirect (to the sign-in page, say) is a failure here, not a page measured under another name.
        with self.client.get(path, name=name, allow_redirects=False, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code} {answer.headers.get('Location', '')}".strip())

    @task(3)
    def overview(self) -> None:
        self.page("/", "/ (overview)")

    @task(2)
    def model_page(self) -> None:
        model = random.choice(FIXTURE["models"])  # noqa: S311
        self.page(f"/models/{model['team']}/{model['name']}/", "/models/[team]/[name]/")

    @task(2)
    def build_page(self) -> None:
        build = random.choice(FIXTURE["builds"])  # noqa: S311
        self.page(f"/builds/{build['id']}/", "/builds/[id]/")

    @task(1)
    def environment_page(self) -> None:
        environment = random.choice(FIXTURE["environments"])  # noqa: S311
        self.page(f"/environments/{environment}/", "/environments/[id]/")


class FollowingLogs(HttpUser):
    weight = 2
    wait_time = between(0.5, 1)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {random.choice(FIXTURE['developers'])['token']}"  # noqa: S311
        wait_for_everyone(self.environment)
        self.build = random.choice(FIXTURE["builds"])  # noqa: S311
        self.after = 0
        wait_for_everyone(self.environment)

    @task
    def next_page(self) -> None:
        answer = self.client.get(
            f"/api/v1/builds/{self.build['id']}/log/?after={self.after}", name="/api/v1/builds/[id]/log/?after="
        )
        body = answer.json() if answer.ok else {"lines": []}
        self.after = body["next_after"] if body["lines"] else 0  # at the end, start over from the beginning


class Uploading(HttpUser):
    weight = 1
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {random.choice(FIXTURE['developers'])['token']}"  # noqa: S311
        wait_for_everyone(self.environment)

    @task
    def upload(self) -> None:
        model = random.choice(FIXTURE["models"])  # noqa: S311
        self.client.post(
            f"/api/v1/models/{model['id']}/versions/",
            data={"framework": "sklearn"},
            files={"artifact": ("model.joblib", os.urandom(1024 * 1024))},
            name="/api/v1/models/[id]/versions/ (upload)",
        )


class Approving(HttpUser):
    weight = 2
    wait_time = between(1, 3)

    def on_start(self) -> None:
        # One person per simulated approver while there are enough (the last one approved while seeding).
        approvers = FIXTURE["approvers"][:-1]
        self.person = approvers[next(APPROVER_SEATS) % len(approvers)]
        self.client.headers["Authorization"] = f"Bearer {self.person['token']}"
        wait_for_everyone(self.environment)

    @task
    def approve_one(self) -> None:
        inbox = self.client.get("/api/v1/promotions/?state=pending", name="/api/v1/promotions/?state=pending")
        if not inbox.ok:
            return
        mine = [
            p for p in inbox.json()["results"] if all(a["approver"] != self.person["username"] for a in p["approvals"])
        ]
        if not mine:
            return
        promotion = random.choice(mine)  # noqa: S311
        seen = self.client.get(f"/api/v1/promotions/{promotion['id']}/", name="/api/v1/promotions/[id]/")
        if not seen.ok:
            return
        with self.client.post(
            f"/api/v1/promotions/{promotion['id']}/approve/",
            json={"comment": "looks good", "digest": seen.json()["image"].rpartition("@")[2]},
            name="/api/v1/promotions/[id]/approve/",
            catch_response=True,
        ) as answer:
            # Other approvers decide at the same time: the request may have got its last approval a
            # moment earlier, or (more simulated approvers than people) this person decided it in another
            # session. A 400 saying so is the right answer then; any other refusal is a failure.
            reasons = answer.json().get("non_field_errors", []) if answer.status_code == 400 else []
            if any(RACED.search(reason) for reason in reasons):
                answer.success()
            elif answer.status_code != 200:
                answer.failure(f"{answer.status_code} {answer.text[:200]}")
