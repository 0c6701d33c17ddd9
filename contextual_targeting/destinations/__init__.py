"""Destinations: where ready segments go. Each subscribes to `Segment Ready` and delivers the segment file.

A destination is one component folder, the same path in the three trees
(`contextual_targeting/destinations/<name>/`, `lambda/destinations/<name>/`, `tests/destinations/<name>/`),
and one `Destination` entry in `registry.py`. The stack deploys the entries the settings name, in registry
order, and adds the outputs each declares. What a destination gets from the stack is `SharedResources`;
what it builds its workflows from is in `destinations/kit.py`.

Adding a destination `<name>`:
1. `contextual_targeting/destinations/<name>/`: a construct that subscribes a state machine to
   `Segment Ready` on the pipeline bus (`contracts.events`; detail SegmentName, Bucket, Key, UserCount, ...)
   and reads the segment file it points to. Its workflow is a chain (`kit.chain`) of `kit.Step` fragments:
   it starts with `kit.read_segment_ready`, calls the service through a `kit.ServiceApi`, polls jobs with
   `kit.poll_job`, and ends every path in a report of a `kit.Reports` whose tail is
   `common.workflow_kit.report_outcome` (one event with a detail-type of its own, one email). Make the
   reports first, then the steps in the order they run: that order fixes each state's place in the
   definition.
2. `contextual_targeting/destinations/<name>/destination.py`:
   `DESTINATION = Destination(name=..., build=...)`; `build` makes the construct under a construct id that
   never changes (logical ids derive from it) and returns its stack outputs (the CLI and the README look
   them up by name: never rename one).
3. Append it to `registry.DESTINATIONS` (the settings accept its name from then on). Settings of its own
   go in `ContextualTargetingSettings` (`contextual_targeting/settings.py`), read from CDK context in
   `app.py`.
4. Runtime code under `lambda/destinations/<name>/<function>/` (deployed with
   `common.workflow_kit.python_function`), tests under `tests/destinations/<name>/`; every state of its
   workflows must be executed by a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

if TYPE_CHECKING:
    from contextual_targeting.settings import ContextualTargetingSettings


@dataclass(frozen=True, kw_only=True)
class SharedResources:
    """What the stack shares with every destination."""

    segments_bucket: s3.IBucket
    """The data bucket: segment files under `segments/`, training users (contact data) under `train/`."""
    event_bus: events.IEventBus
    """The pipeline bus: `Segment Ready` comes in, the destination's state changes go out."""
    notification_topic: sns.ITopic
    """Run summaries are emailed through this topic."""
    access_logs_bucket: s3.IBucket
    """Receives the server access logs of any bucket a destination makes."""
    settings: ContextualTargetingSettings
    """The deployment choices (a destination reads its own fields)."""


@dataclass(frozen=True)
class StackOutput:
    """One stack output a destination declares."""

    name: str
    """Output name: the CLI and the README look outputs up by it, so it never changes."""
    value: str
    description: str


@dataclass(frozen=True, kw_only=True)
class DeployedDestination:
    """What building a destination made: its construct and its stack outputs."""

    construct: Construct
    outputs: Sequence[StackOutput]


@dataclass(frozen=True, kw_only=True)
class Destination:
    """A destination the stack can deploy."""

    name: str
    """Its name in the settings and in `-c destinations=...` (`customer-profiles`, `pinpoint`)."""
    build: Callable[[Construct, SharedResources], DeployedDestination]
    """Makes the destination's construct in the stack (under a fixed construct id) and names its outputs."""
