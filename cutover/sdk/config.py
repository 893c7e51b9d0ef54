"""The config client: keeps the current SDK config document, polled in a background thread.

It long-polls `GET /api/v1/sdk/config?wait=S` with `If-None-Match`, so a change (a rollback above all)
arrives within a round trip. On any failure — the control plane down, a 5xx, a 401, a document that does
not parse — it keeps the last good document and retries with jittered exponential backoff, forever
(slower after 401/403), waiting a Retry-After when it gets one. With no document at all, callers route
everything to the baseline.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from cutover.sdk.document import ConfigDocument, InvalidDocument, PlanConfig, parse_document
from cutover.sdk.transport import Backoff, ControlPlaneHTTP, retry_after_of

logger = logging.getLogger("cutover.sdk.config")

CONFIG_PATH = "/api/v1/sdk/config"


class ConfigState(StrEnum):
    INITIALIZING = "initializing"  # the control plane has not answered yet (a bootstrap document may be in use)
    VALID = "valid"  # the last poll succeeded: the document is current
    INTERRUPTED = "interrupted"  # the last poll failed: routing stays on the last good document, if any


class ConfigClient:
    """Holds the last good document; `document`, `state` and `document_age` are safe to read from any thread.

    `bootstrap_file`: loaded at start (when present and valid) and rewritten on every new document, so a
    restart while the control plane is down still routes by the last known split.
    """

    def __init__(self, control_plane: str, sdk_key: str, *, bootstrap_file: str | os.PathLike[str] | None = None,
                 wait: float = 30.0, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 auth_backoff_base: float = 10.0, auth_backoff_max: float = 300.0, min_poll_interval: float = 0.2,
                 on_change: Callable[[ConfigDocument], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.control_plane = control_plane
        self._sdk_key = sdk_key
        self.bootstrap_file = Path(bootstrap_file) if bootstrap_file else None
        self.wait = wait
        self.min_poll_interval = min_poll_interval
        self._backoff = Backoff(backoff_base, backoff_max)
        self._auth_backoff = Backoff(auth_backoff_base, auth_backoff_max)
        self._on_change = on_change
        self._transport = transport
        self._document: ConfigDocument | None = None
        self._etag: str | None = None
        self._confirmed_at: float | None = None  # time.time() when the control plane last vouched for it
        self._state = ConfigState.INITIALIZING
        self.last_error: str | None = None
        self.failures = 0
        self.polls = 0
        self._ready = threading.Event()  # set at the first answer, good or bad
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.bootstrap_file is not None:
            self._load_bootstrap(self.bootstrap_file)

    # --- what callers read ---------------------------------------------------------------------------

    @property
    def document(self) -> ConfigDocument | None:
        return self._document

    @property
    def state(self) -> ConfigState:
        return self._state

    @property
    def version(self) -> int | None:
        document = self._document
        return document.version if document else None

    @property
    def document_age(self) -> float | None:
        """Seconds since the control plane last confirmed the document in use; None without a document."""
        confirmed = self._confirmed_at
        return None if confirmed is None or self._document is None else max(time.time() - confirmed, 0.0)

    def plan(self, key: str) -> PlanConfig | None:
        document = self._document
        return document.plans.get(key) if document is not None else None

    def status(self) -> dict[str, Any]:
        age = self.document_age
        return {"state": self.state.value, "version": self.version,
                "document_age_s": round(age, 3) if age is not None else None,
                "last_error": self.last_error, "failures": self.failures}

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> ConfigClient:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cutover-config", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 1.0) -> None:
        """Stop polling. A long-poll in flight is abandoned (the thread is a daemon)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_until_ready(self, timeout: float) -> bool:
        """Wait for the control plane's first answer (good or bad); True if it came in time."""
        return self._ready.wait(timeout)

    def wait_for_version(self, predicate: Callable[[ConfigDocument], bool], timeout: float) -> bool:
        """Block until the current document satisfies `predicate` (tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                document = self._document
                if document is not None and predicate(document):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)

    # --- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        http = ControlPlaneHTTP(self.control_plane, self._sdk_key, transport=self._transport)
        try:
            while not self._stop.is_set():
                delay = self._poll_once(http)
                if delay > 0 and self._stop.wait(delay):
                    break
        finally:
            http.close()

    def _poll_once(self, http: ControlPlaneHTTP) -> float:
        """One request; returns how long to wait before the next."""
        headers = {"If-None-Match": self._etag} if self._etag and self._document is not None else {}
        params = {"wait": self.wait} if headers and self.wait > 0 else None
        started = time.monotonic()
        self.polls += 1
        try:
            response = http.get(CONFIG_PATH, headers=headers, params=params, timeout=self.wait + 10.0)
        except httpx.HTTPError as error:
            return self._failed(f"control plane unreachable: {type(error).__name__}: {error}")
        if response.status_code == 304:
            self._succeeded()
            elapsed = time.monotonic() - started
            return max(self.min_poll_interval - elapsed, 0.0)
        if response.status_code in (401, 403):
            return self._failed(f"the SDK key was refused (HTTP {response.status_code})", auth=True,
                                retry_after=retry_after_of(response))
        if response.status_code != 200:
            return self._failed(f"HTTP {response.status_code} from the control plane",
                                retry_after=retry_after_of(response))
        try:
            document = parse_document(json.loads(response.content))
        except (ValueError, InvalidDocument) as error:
            return self._failed(f"rejected a malformed config document: {error}")
        self._install(document, response.headers.get("etag") or f'"{document.version}"', time.time())
        self._succeeded()
        return 0.0

    def _succeeded(self) -> None:
        self._confirmed_at = time.time()
        self._state = ConfigState.VALID
        self.last_error = None
        self._backoff.reset()
        self._auth_backoff.reset()
        self._ready.set()

    def _failed(self, message: str, *, auth: bool = False, retry_after: float | None = None) -> float:
        if self.last_error != message:
            logger.warning("cutover config: %s; routing stays on %s", message,
                           f"version {self.version}" if self._document else "the baseline (no document yet)")
        self.last_error = message
        self.failures += 1
        self._state = ConfigState.INTERRUPTED
        self._ready.set()
        backoff = self._auth_backoff if auth else self._backoff
        return backoff.next_delay(retry_after)

    def _install(self, document: ConfigDocument, etag: str, confirmed_at: float, *, persist: bool = True) -> None:
        with self._changed:
            self._document = document
            self._etag = etag
            self._confirmed_at = confirmed_at
            self._changed.notify_all()
        if persist and self.bootstrap_file is not None:
            self._save_bootstrap(self.bootstrap_file, document, etag, confirmed_at)
        if self._on_change is not None:
            try:
                self._on_change(document)
            except Exception:  # a listener's bug must not stop polling
                logger.exception("cutover config: on_change listener failed")

    # --- the bootstrap file --------------------------------------------------------------------------

    def _load_bootstrap(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            logger.warning("cutover config: ignoring bootstrap file %s: %s", path, error)
            return
        # Either what we wrote ({"document", "etag", "fetched_at"}) or a bare document.
        raw = data.get("document", data) if isinstance(data, dict) else data
        try:
            document = parse_document(raw)
        except InvalidDocument as error:
            logger.warning("cutover config: ignoring bootstrap file %s: %s", path, error)
            return
        fetched_at = data.get("fetched_at") if isinstance(data, dict) else None
        confirmed = float(fetched_at) if isinstance(fetched_at, int | float) else path.stat().st_mtime
        etag = data.get("etag") if isinstance(data, dict) and isinstance(data.get("etag"), str) else None
        self._install(document, etag or f'"{document.version}"', confirmed, persist=False)

    @staticmethod
    def _save_bootstrap(path: Path, document: ConfigDocument, etag: str, fetched_at: float) -> None:
        body = json.dumps({"document": dict(document.raw), "etag": etag, "fetched_at": fetched_at})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
                handle.write(body)
            os.replace(handle.name, path)  # atomic: a crash never leaves half a file to bootstrap from
        except OSError as error:
            logger.warning("cutover config: cannot write bootstrap file %s: %s", path, error)
