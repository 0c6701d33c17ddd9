"""Scripted EventBridge and SNS answers that keep what a workflow sent, for assertions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from contextual_targeting.contracts.events import EVENT_SOURCE

from .harness import TaskCall


class Outbox:
    """Answers `events:putEvents` and `sns:publish`, keeping the events (detail parsed) and the emails."""

    def __init__(self, detail_type: str) -> None:
        self.detail_type = detail_type
        self.events: list[dict[str, Any]] = []
        self.emails: list[dict[str, Any]] = []

    def handlers(self) -> dict[str, Callable[[TaskCall], Any]]:
        """Handlers for `events:putEvents` and `sns:publish`."""
        return {"events:putEvents": self._put, "sns:publish": self._publish}

    def _put(self, call: TaskCall) -> Any:
        for entry in call.parameters["Entries"]:
            detail = entry["Detail"]
            self.events.append({**entry, "Detail": json.loads(detail) if isinstance(detail, str) else detail})
        return {"Entries": [{"EventId": f"e-{len(self.events)}"}], "FailedEntryCount": 0}

    def _publish(self, call: TaskCall) -> Any:
        self.emails.append(call.parameters)
        return {"MessageId": f"m-{len(self.emails)}"}

    @property
    def detail(self) -> dict[str, Any]:
        """The one event's detail, asserting there is exactly one, of `detail_type`, from the project."""
        assert len(self.events) == 1, self.events
        event = self.events[0]
        assert event["DetailType"] == self.detail_type
        assert event["Source"] == EVENT_SOURCE
        detail: dict[str, Any] = event["Detail"]
        return detail
