"""One snapshot of the whole synthesized stack; update with `make snapshot-update` after a reviewed change."""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk.assertions import Template
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def _masked(template: Template) -> Any:
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template.to_json(), sort_keys=True)))


def test_default_stack_matches_snapshot(template: Template, snapshot: SnapshotAssertion) -> None:
    assert _masked(template) == snapshot.use_extension(JSONSnapshotExtension)


def test_stack_with_every_option_matches_snapshot(
    full_template: Template, snapshot: SnapshotAssertion
) -> None:
    assert _masked(full_template) == snapshot.use_extension(JSONSnapshotExtension)
