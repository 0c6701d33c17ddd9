"""Stream an S3 object to a Customer Profiles upload URL with the SSE-C headers its ClientToken asks for.

The ClientToken is the plaintext data key of the upload (base64, 256 bits): it lives in this process only,
never in a return value, an exception message or a log line.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
from collections.abc import Iterable
from urllib.parse import urlsplit

CHUNK = 1024 * 1024
TIMEOUT_SECONDS = 120


class UploadRejectedError(RuntimeError):
    """The upload URL answered with an error status."""


def sse_c_headers(client_token: str) -> dict[str, str]:
    """S3 SSE-C headers: the key as given, and the base64 MD5 of the decoded 256-bit key."""
    key = base64.b64decode(client_token, validate=True)
    digest = hashlib.md5(key, usedforsecurity=False).digest()
    return {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": client_token,
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(digest).decode("ascii"),
    }


def put_stream(url: str, chunks: Iterable[bytes], length: int, headers: dict[str, str]) -> int:
    """PUT `length` bytes from `chunks` to `url` with an explicit Content-Length; return the HTTP status."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("the upload URL must be an http(s) URL")
    connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_type(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        # Content-Length up front: S3 rejects a chunked transfer encoding on a presigned PUT.
        connection.putrequest("PUT", target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        sent = 0
        for chunk in chunks:
            sent += len(chunk)
            if sent > length:
                raise ValueError(f"the file grew while it was uploaded ({sent} > {length} bytes)")
            connection.send(chunk)
        if sent != length:
            raise ValueError(f"the file ended after {sent} of {length} bytes")
        response = connection.getresponse()
        body = response.read(2048)
        if response.status >= 300:
            # S3's error document names the code (SignatureDoesNotMatch, ...), never the key.
            raise UploadRejectedError(
                f"upload URL answered HTTP {response.status}: {body.decode('utf-8', 'replace')[:500]}"
            )
        return response.status
    finally:
        connection.close()
