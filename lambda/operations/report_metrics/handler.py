"""Lambda: a destination's report event becomes business metrics (profiles uploaded and failed).

The Customer Profiles workflow learns these counts from the upload job and reports them in its
`Customer Profiles Segment State Change` event; this function files them in CloudWatch (embedded metric
format), so the dashboard and the failed-records alarm read the same numbers as the email.
"""

from __future__ import annotations

from typing import Any

from run_log import bind, identifiers, logged, put_metrics

FIGURES = ("ProfilesUploaded", "ProfilesFailed")


def figures(detail: dict[str, Any]) -> dict[str, float]:
    """The report's counts that are numbers (a report written before the upload job may have none)."""
    return {
        name: float(detail[name])
        for name in FIGURES
        if isinstance(detail.get(name), int | float) and not isinstance(detail.get(name), bool)
    }


@logged
def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    """Entry point: the EventBridge event; emits the figures per pipeline and per segment definition."""
    detail = event.get("detail") or {}
    bind(**identifiers(detail))
    found = figures(detail)
    if found:
        put_metrics(found, dimensions={"SegmentDefinition": str(detail.get("SegmentDefinitionName") or "")})
    return {"Metrics": sorted(found)}
