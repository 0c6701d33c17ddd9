"""The object key an S3 event names: one rule for every consumer of `detail.object.key`.

S3 URL-encodes keys in its event notifications ("red flower.jpg" arrives as "red+flower.jpg",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html), while a key that
reaches a workflow another way (a manual start, EventBridge delivering it as stored) is the stored key. So
the candidates are, in order: the key decoded with `unquote_plus` (the documented encoding), the key as
received, and the key `%`-decoded only (an encoder that writes spaces as `%20` and leaves `+` alone). The
first one S3 has is the object; with the event's version id, a candidate that only shares the name with
another object finds no such version and is passed over.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, unquote_plus

# HeadObject has no body, so a missing key or version comes back as the bare status code.
_ABSENT = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


def key_candidates(key: str) -> list[str]:
    """The stored keys an event's key may stand for, most likely first, without repeats."""
    return list(dict.fromkeys((unquote_plus(key), key, unquote(key))))


def find_object_key(s3: Any, bucket: str, key: str, version_id: str | None = None) -> str | None:
    """The first candidate of `key` that S3 has (at `version_id` when given), None when it has none."""
    version = {"VersionId": version_id} if version_id else {}
    for candidate in key_candidates(key):
        try:
            s3.head_object(Bucket=bucket, Key=candidate, **version)
        except Exception as err:
            response = getattr(err, "response", None)
            code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
            if code in _ABSENT:
                continue
            raise
        return candidate
    return None
