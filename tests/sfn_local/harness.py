"""Moved to `contextual_targeting.local.harness`: `tests.sfn_local.harness` is that same module (one set of
globals, e.g. the state coverage the whole suite checks), so existing imports keep working."""

import sys

from contextual_targeting.local import harness

sys.modules[__name__] = harness
