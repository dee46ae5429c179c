"""One background thread refreshes every live display, at most ~10 times a second.

A view's ``refresh()`` reads its jobs (attributes the poller keeps current: no scheduler
calls), and sends ONE widget-state message when what it shows changed, none otherwise.
A view drops out when everything it shows has finished; the thread ends when no view is
left and starts again with the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

__all__ = ["INTERVAL", "Refreshable", "Refresher", "refresher", "widget_bundle"]

log = logging.getLogger(__name__)

INTERVAL = 0.1  # seconds between refreshes of one display: at most 10 updates per second


class Refreshable(Protocol):
    def refresh(self) -> bool:
        """Update the display; True once it will never change again."""
        ...


class Refresher:
    """The throttled timer thread behind every live display."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._views: list[Refreshable] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, view: Refreshable) -> None:
        """Keep ``view`` refreshed until it says it is finished."""
        with self._lock:
            if not any(v is view for v in self._views):
                self._views.append(view)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="slurm_magics-widgets", daemon=True
                )
                self._thread.start()

    def __contains__(self, view: object) -> bool:
        """True while ``view`` is still refreshed."""
        with self._lock:
            return any(v is view for v in self._views)

    def _run(self) -> None:
        while True:
            with self._lock:
                views = list(self._views)
                if not views:
                    self._thread = None
                    return
            started = time.monotonic()
            for view in views:
                try:
                    finished = view.refresh()
                except Exception:  # a broken display must not stop the others
                    log.exception("slurm_magics: refreshing %r failed; it stops updating", view)
                    finished = True
                if finished:
                    with self._lock:
                        self._views = [v for v in self._views if v is not view]
            time.sleep(max(self.interval - (time.monotonic() - started), 0.01))


refresher = Refresher()


def widget_bundle(widget: Any, text: str) -> dict[str, Any]:
    """A widget's mime bundle whose text/plain says something (terminals, nbconvert)."""
    bundle: dict[str, Any] = widget._repr_mimebundle_()
    bundle["text/plain"] = text
    return bundle
