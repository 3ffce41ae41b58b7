"""The HTTP client: one place for the token, the timeouts, retries with backoff, and error answers.

Retrying is safe only when the server cannot have acted twice: a request that never reached it
(connection refused, connect timeout), an answer that says it was not processed (429, 503), or a
GET, which changes nothing. A POST whose answer was lost is not repeated: the error says so.
"""

import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from slipway_cli import __version__
from slipway_cli.config import Settings
from slipway_cli.errors import ServerError, Usage, for_status

NOT_PROCESSED = {429, 503}
TRANSIENT_FOR_READS = {500, 502, 504}
MAX_DELAY = 30.0


class Api:
    def __init__(self, settings: Settings, *, say: Callable[[str], None]):
        self.settings = settings
        self.say = say
        self.client = httpx.Client(
            base_url=f"{settings.url}/api/v1",
            headers={"Authorization": f"Bearer {settings.token}", "User-Agent": f"slipway-cli/{__version__}"},
            timeout=httpx.Timeout(60.0, connect=10.0),
            follow_redirects=False,
        )

    def page(self, path: str) -> str:
        """The address of a page of the web UI, from its path."""
        return f"{self.settings.url}{path}"

    def get(self, path: str, params: dict | None = None) -> Any:
        return self.request("GET", path, params={k: v for k, v in (params or {}).items() if v is not None})

    def post(self, path: str, data: dict | None = None) -> Any:
        return self.request("POST", path, json=data or {})

    def every(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """All the results of a paginated list, page by page."""
        page = 1
        while True:
            body = self.get(path, {**(params or {}), "page": page, "page_size": 500})
            yield from body["results"]
            if not body.get("next"):
                return
            page += 1

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], Iterable[bytes]] | None = None,
        timeout: httpx.Timeout | None = None,
        **kwargs,
    ) -> Any:
        """Send, retrying what is safe to retry; return the decoded JSON or raise the CLI's error.

        `body` makes a fresh request body for each attempt (a streamed upload cannot be rewound)."""
        idempotent = method in ("GET", "HEAD", "OPTIONS")
        attempts = self.settings.retries + 1
        for attempt in range(1, attempts + 1):
            wait = None
            try:
                response = self.client.request(
                    method,
                    path,
                    content=body() if body else None,
                    timeout=timeout or httpx.USE_CLIENT_DEFAULT,
                    **kwargs,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                problem, retry = f"cannot reach {self.settings.url} ({exc or type(exc).__name__})", True
            except httpx.TransportError as exc:
                problem = f"{method} {path} broke off ({exc or type(exc).__name__})"
                retry = idempotent
                if not idempotent:
                    problem += "; it may or may not have been applied, so it is not repeated"
            else:
                status = response.status_code
                if status < 300:
                    return self.decode(response, method, path)
                if status < 400:
                    where = response.headers.get("Location", "elsewhere")
                    raise Usage(f"{method} {path} was redirected to {where}: point SLIPWAY_URL at the server's address")
                if status in NOT_PROCESSED or (idempotent and status in TRANSIENT_FOR_READS):
                    problem, retry = f"the server answered {status} to {method} {path}", True
                    wait = retry_after(response)
                else:
                    raise for_status(status, decoded(response), method=method, path=path)
            if not retry or attempt == attempts:
                raise ServerError(f"{problem}; gave up after {attempt} attempt{'s' if attempt > 1 else ''}")
            delay = wait if wait is not None else self.delay(attempt)
            self.say(f"{problem}; retrying in {delay:.1f} s (attempt {attempt + 1} of {attempts})")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def decode(self, response: httpx.Response, method: str, path: str):
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise Usage(
                f"{method} {path} answered with something other than JSON: is {self.settings.url} a Slipway server?"
            ) from None

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, so many CI jobs do not retry in step."""
        base = self.settings.backoff * 2 ** (attempt - 1)
        return min(MAX_DELAY, base * random.uniform(0.8, 1.2))  # noqa: S311 (jitter, not a secret)

    def close(self) -> None:
        self.client.close()


def retry_after(response: httpx.Response) -> float | None:
    try:
        return min(MAX_DELAY, max(0.0, float(response.headers.get("Retry-After", ""))))
    except ValueError:
        return None


def decoded(response: httpx.Response):
    try:
        return response.json()
    except ValueError:
        return response.text.strip()[:500]
