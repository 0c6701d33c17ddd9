"""The destinations the stack knows, in the order it deploys them."""

from __future__ import annotations

from contextual_targeting.destinations import Destination
from contextual_targeting.destinations.customer_profiles.destination import DESTINATION as CUSTOMER_PROFILES
from contextual_targeting.destinations.pinpoint.destination import DESTINATION as PINPOINT

DESTINATIONS: tuple[Destination, ...] = (CUSTOMER_PROFILES, PINPOINT)
DESTINATION_NAMES = tuple(destination.name for destination in DESTINATIONS)
