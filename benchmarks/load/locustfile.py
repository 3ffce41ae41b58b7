"""What 50 people and scripts do at once, for Locust. Reads the fixture seed.py wrote ($SLIPWAY_LOAD_FIXTURE).

Four kinds of simulated users, by weight:
- a team member browsing: the overview, a model, a build page and an environment page (session login);
- a CI script following a build log with `after`, page by page, as the CLI does;
- a CI script uploading a version (a fresh 1 MiB artifact);
- an approver reading the inbox and a request, then approving it with the digest it saw.

Requests are named by route (not by id), so the report has one line per endpoint. This file runs in
Locust's own virtualenv and imports nothing of the platform.
"""

from __future__ import annotations

import json
import os
import random
import re

from locust import HttpUser, between, task
from locust.exception import StopUser

FIXTURE = json.loads(open(os.environ["SLIPWAY_LOAD_FIXTURE"]).read())  # noqa: SIM115 - read once
SIGN_IN = "sign-in:"  # run.py reports these requests apart from the endpoints under load
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browsing(HttpUser):
    weight = 5
    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        # Once per simulated person, as a browser keeps its session. Named apart ("sign-in: ..."): its
        # cost is the password hash (PBKDF2, deliberately slow), reported beside the pages, not among them.
        person = random.choice(FIXTURE["developers"] + [FIXTURE["viewer"]])  # noqa: S311 - not security
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
            if answer.status_code != 302 or "sessionid" not in self.client.cookies:
                answer.failure(f"not signed in: {answer.status_code}")
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
        self.build = random.choice(FIXTURE["builds"])  # noqa: S311
        self.after = 0

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
        approvers = FIXTURE["approvers"][:-1]  # the last one approved while seeding
        self.person = approvers[self.environment.runner.user_count % len(approvers)]
        self.client.headers["Authorization"] = f"Bearer {self.person['token']}"

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
        seen = self.client.get(f"/api/v1/promotions/{promotion['id']}/", name="/api/v1/promotions/[id]/").json()
        with self.client.post(
            f"/api/v1/promotions/{promotion['id']}/approve/",
            json={"comment": "looks good", "digest": seen["image"].rpartition("@")[2]},
            name="/api/v1/promotions/[id]/approve/",
            catch_response=True,
        ) as answer:
            # Another approver may have completed the request a moment earlier: a clear refusal (4xx
            # with a reason) is the right answer then, not an error of the platform.
            if answer.status_code in (400, 409) and "detail" in answer.text:
                answer.success()
