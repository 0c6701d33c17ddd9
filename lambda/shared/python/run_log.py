"""Structured logs and metrics for every Lambda of the pipeline (deployed in the `SharedCode` layer).

Logs: the functions run with Lambda's JSON log format, whose formatter writes each attribute of a log record
as a key of the JSON line. `logged` (the handler's decorator) gives every record made during the invocation,
by any logger of any module, the run's identifiers found in the event (`ExecutionName`, `DatasetGroupName`,
`SegmentName`, ...), and logs an escaping exception with its stack trace before Lambda reports it.

Metrics: `put_metrics` prints one CloudWatch embedded-metric-format line; Lambda's log ingestion turns it
into metrics, so no API call and no extra permission.

Lambda's own JSON format rather than Powertools Logger/Metrics: it needs no layer whose version must be
pinned per region and architecture, and its formatter already writes the level, request id, stack trace
and any record attribute; what Powertools would add here is the identifiers, which take a few lines.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

IDENTIFIERS = ("ExecutionName", "DatasetGroupName", "SegmentName", "JobName", "JobId", "Key")
# A log key carries an identifier, never a payload: long values are cut.
MAX_IDENTIFIER = 256
DEFAULT_NAMESPACE = "ContextualTargeting"
# CloudWatch dimension values: 1 to 1024 characters.
MAX_DIMENSION = 1024

LOGGER = logging.getLogger("contextual_targeting")
_RUN: ContextVar[Mapping[str, str] | None] = ContextVar("run_identifiers", default=None)
_Handler = TypeVar("_Handler", bound=Callable[[Any, Any], Any])


def _install_record_factory() -> None:
    """Every LogRecord made from now on carries the current run's identifiers (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "adds_run_identifiers", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for key, value in (_RUN.get() or {}).items():
            if not hasattr(record, key):  # `extra=` given at the call wins
                setattr(record, key, value)
        return record

    factory.adds_run_identifiers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def identifiers(event: Any) -> dict[str, str]:
    """The run's identifiers among the event's top-level keys (strings, cut to MAX_IDENTIFIER)."""
    if not isinstance(event, Mapping):
        return {}
    return {
        key: str(event[key])[:MAX_IDENTIFIER]
        for key in IDENTIFIERS
        if isinstance(event.get(key), str | int) and str(event[key])
    }


def bind(**found: str) -> None:
    """Add identifiers learnt during the invocation (e.g. from a file read) to the following log lines."""
    _RUN.set({**(_RUN.get() or {}), **{k: str(v)[:MAX_IDENTIFIER] for k, v in found.items()}})


def logged(handler: _Handler) -> _Handler:
    """Decorate a Lambda handler: identifiers on every log line, start and end logged, errors with traces."""
    _install_record_factory()

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        token = _RUN.set(identifiers(event))
        started = time.monotonic()
        try:
            LOGGER.info("invoked")
            result = handler(event, context)
        except Exception:
            LOGGER.exception("failed after %.1f s", time.monotonic() - started)
            raise
        else:
            LOGGER.info("done in %.1f s", time.monotonic() - started)
            return result
        finally:
            _RUN.reset(token)

    return wrapper  # type: ignore[return-value]


def _dimension(value: str) -> str:
    text = str(value).strip()[:MAX_DIMENSION]
    return text or "unknown"


def metrics_document(
    values: Mapping[str, float],
    *,
    dimensions: Mapping[str, str] | None = None,
    unit: str = "Count",
    namespace: str | None = None,
    pipeline: str | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """One EMF document: each value per `Pipeline`, and per `Pipeline` + `dimensions` when given."""
    finite = {name: float(v) for name, v in values.items() if math.isfinite(float(v))}
    dims = {k: _dimension(v) for k, v in (dimensions or {}).items()}
    clash = set(finite) & ({"Pipeline"} | set(dims))
    if clash:
        raise ValueError(f"metric names {sorted(clash)} are also dimension names")
    sets = [["Pipeline"], ["Pipeline", *dims]] if dims else [["Pipeline"]]
    return {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace or os.environ.get("METRICS_NAMESPACE", DEFAULT_NAMESPACE),
                    "Dimensions": sets,
                    "Metrics": [{"Name": name, "Unit": unit} for name in finite],
                }
            ],
        },
        "Pipeline": _dimension(pipeline or os.environ.get("PIPELINE_NAME", "contextual-targeting")),
        **dims,
        **finite,
    }


def put_metrics(
    values: Mapping[str, float], *, dimensions: Mapping[str, str] | None = None, unit: str = "Count"
) -> None:
    """Emit business figures as CloudWatch metrics (embedded metric format on stdout)."""
    print(json.dumps(metrics_document(values, dimensions=dimensions, unit=unit)), flush=True)
