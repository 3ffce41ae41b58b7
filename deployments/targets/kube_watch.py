"""Following the objects of one rollout with watches instead of polling them.

A Feed lists the objects of one kind that match a selector, then watches them from the list's
resourceVersion in a thread of its own, asking for bookmarks (so a quiet watch still knows how far it
is up to date). When the server answers 410 Gone (the resourceVersion was compacted away) it lists
again and watches from there; when a watch ends (the server's timeout, a dropped connection) it opens
the next one from the last resourceVersion it saw. Whoever reads it waits on `changed`.

An event replaces an object whole and never changes one in place, so readers get the objects
themselves, not copies (copying every pod on every look cost a rollout about 50 ms of held interpreter
lock); they must not change them either.

A watch that cannot be opened at all (refused, or the API does not answer it) is reported as
WatchUnavailable, and the rollout polls instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from .base import LogFn, TargetError, TransientTargetError
from .kube_api import KubeApi, describe_api_error

__all__ = ["Feed", "WatchUnavailable"]

Obj = dict[str, Any]
GONE = 410
REOPEN_ATTEMPTS = 3  # a watch that cannot be opened again this often in a row gives way to polling
REOPEN_BACKOFF = 0.5


class WatchUnavailable(Exception):
    """The watch cannot be opened (or kept open); the message says why."""


class Feed:
    def __init__(
        self,
        api: KubeApi,
        kind: str,
        *,
        selectors: dict[str, str],
        changed: threading.Event,
        log: LogFn,
        seconds: int = 60,
    ) -> None:
        self.api, self.kind, self.selectors, self.changed, self.seconds = api, kind, selectors, changed, seconds
        self.log = log
        self.failure = ""  # set when the feed stopped following: read it, then poll
        self.lists = self.watches = 0
        self._objects: dict[str, Obj] = {}
        self._version = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    # --- for the rollout --------------------------------------------------------------------------

    def start(self) -> None:
        """List, and open the first watch, in the caller's thread: WatchUnavailable if it cannot be opened."""
        self._list()
        self._response = self._open()
        self._thread = threading.Thread(target=self._follow, daemon=True, name=f"watch-{self.kind.lower()}")
        self._thread.start()

    def objects(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def get(self, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get(name)

    def stop(self) -> None:
        self._stopping.set()
        _interrupt(self._response)
        if self._thread is not None:
            self._thread.join(timeout=2)

    # --- in the feed's thread ---------------------------------------------------------------------

    def _follow(self) -> None:
        try:
            while not self._stopping.is_set():
                self._read(self._response)
                if self._stopping.is_set():
                    return
                self._response = self._reopen()
                if self._stopping.is_set():  # stopped while the watch was being opened: stop() missed it
                    _release(self._response)
                    return
        except (WatchUnavailable, TargetError, TransientTargetError) as error:
            if not self._stopping.is_set():
                self.failure = str(error)
        finally:
            self.changed.set()

    def _read(self, response: Any) -> None:
        """Apply the events of one watch until it ends; on 410 Gone, list again."""
        try:
            for event in _events(response):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == GONE:
                        self._list()
                        return
                    raise WatchUnavailable(f"the watch of {self.kind}s failed: {obj.get('message', obj)}")
                version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                with self._lock:
                    if kind in ("ADDED", "MODIFIED"):
                        self._objects[obj["metadata"]["name"]] = obj
                    elif kind == "DELETED":
                        self._objects.pop(obj["metadata"]["name"], None)
                    self._version = version or self._version
                if kind != "BOOKMARK":
                    self.changed.set()
                if self._stopping.is_set():
                    return
        except (urllib3.exceptions.HTTPError, OSError, ValueError):
            pass  # a dropped connection or a cut line: the next watch resumes from the last resourceVersion
        finally:
            _release(response)

    def _reopen(self) -> Any:
        for attempt in range(REOPEN_ATTEMPTS):
            try:
                return self._open()
            except WatchUnavailable:
                if attempt == REOPEN_ATTEMPTS - 1 or self._stopping.wait(REOPEN_BACKOFF * 2**attempt):
                    raise
        raise AssertionError("unreachable")

    # --- both -------------------------------------------------------------------------------------

    def _list(self) -> None:
        items, version = self.api.list_with_version(self.kind, selectors=self.selectors, log=self.log)
        with self._lock:
            self._objects = {obj["metadata"]["name"]: obj for obj in items}
            self._version = version
            self.lists += 1
        self.changed.set()

    def _open(self) -> Any:
        for _ in range(2):  # a 410 answered at once: list again, then try once more
            try:
                response = self.api.open_watch(
                    self.kind, selectors=self.selectors, resource_version=self._version, seconds=self.seconds
                )
            except ApiException as error:
                if error.status == GONE:
                    self._list()
                    continue
                raise WatchUnavailable(f"the API refused to watch {self.kind}s: {describe_api_error(error)}") from None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise WatchUnavailable(
                    f"a watch of {self.kind}s could not be opened: {describe_api_error(error)}"
                ) from None
            self.watches += 1
            return response
        raise WatchUnavailable(f"the watch of {self.kind}s keeps answering 410 Gone")


def _events(response: Any) -> Iterator[Obj]:
    """The JSON lines of a watch response, each as soon as it has arrived."""
    pending = b""
    for chunk in response.stream(16 * 1024, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)


def _interrupt(response: Any) -> None:
    """Unblock a thread reading the response: urllib3 2.3+ shuts its socket down; else it is closed."""
    if response is None:
        return
    try:
        response.shutdown()
    except (AttributeError, ValueError):  # an older urllib3, or a response already released
        _release(response)
    except (OSError, urllib3.exceptions.HTTPError):
        pass


def _release(response: Any) -> None:
    try:
        response.close()
        response.release_conn()
    except (OSError, urllib3.exceptions.HTTPError):
        pass
