"""A local stand-in for Amazon EventBridge Scheduler: the training workflow's schedule calls, kept in memory.

Answers `getSchedule`, `createSchedule`, `updateSchedule` and `deleteSchedule` as the `scheduler` API model
does (PascalCase members; `ResourceNotFoundException` / `ConflictException` by name). Nothing fires: the demo
shows what a config's `schedule` block would set up, not a run it would start.
"""

from __future__ import annotations

from typing import Any

from contextual_targeting.local.harness import AwsError, TaskCall

STAND_IN = "local stand-in for Amazon EventBridge Scheduler"


class SchedulerStandIn:
    """Schedules by (group, name), as the last create or update left them."""

    def __init__(self, *, region: str, account: str) -> None:
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}
        self._region, self._account = region, account

    def call(self, action: str, call: TaskCall) -> dict[str, Any]:
        """One SDK call of the workflow."""
        request = dict(call.parameters)
        key = (str(request.get("GroupName") or "default"), str(request["Name"]))
        arn = f"arn:aws:scheduler:{self._region}:{self._account}:schedule/{key[0]}/{key[1]}"
        if action == "getSchedule":
            if key not in self.schedules:
                raise AwsError("Scheduler.ResourceNotFoundException", f"Schedule {key[1]} does not exist.")
            return {**self.schedules[key], "Arn": arn}
        if action == "createSchedule":
            if key in self.schedules:
                raise AwsError("Scheduler.ConflictException", f"Schedule {key[1]} already exists.")
            self.schedules[key] = request
            return {"ScheduleArn": arn}
        if action == "updateSchedule":
            if key not in self.schedules:
                raise AwsError("Scheduler.ResourceNotFoundException", f"Schedule {key[1]} does not exist.")
            self.schedules[key] = request
            return {"ScheduleArn": arn}
        if action == "deleteSchedule":
            if self.schedules.pop(key, None) is None:
                raise AwsError("Scheduler.ResourceNotFoundException", f"Schedule {key[1]} does not exist.")
            return {}
        raise AwsError("Scheduler.ValidationException", f"the {STAND_IN} does not answer {action}")
