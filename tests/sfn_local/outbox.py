"""Moved to `contextual_targeting.local.outbox`: `tests.sfn_local.outbox` is that same module (one set of
globals, e.g. the state coverage the whole suite checks), so existing imports keep working."""

import sys

from contextual_targeting.local import outbox

sys.modules[__name__] = outbox
