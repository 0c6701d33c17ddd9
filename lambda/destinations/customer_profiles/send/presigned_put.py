"""Stream an S3 object to a Customer Profiles upload URL with the SSE-C headers its ClientToken asks for.

The ClientToken is the plaintext data key of the upload (base64, 256 bits): it lives in this process only,
never in a return value, an exception message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
from collections.abc import Iterable
from urllib.parse import urlsplit
from xml.etree import ElementTree

CHUNK = 1024 * 1024
TIMEOUT_SECONDS = 120
ERROR_BODY_BYTES = 4096  # S3 error documents are a few hundred bytes
ERROR_TEXT_LIMIT = 300
SSE_C_KEY_BYTES = 32  # SSE-C is AES-256 only: "the 256-bit, base64-encoded encryption key"
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerSideEncryptionCustomerKeys.html


class UploadRejectedError(RuntimeError):
    """The upload URL answered with an error status."""


def sse_c_headers(client_token: str) -> dict[str, str]:
    """S3 SSE-C headers: the key as given, and the base64 MD5 of the decoded 256-bit key."""
    try:
        key = base64.b64decode(client_token, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != SSE_C_KEY_BYTES:
        # Refused here rather than by S3, whose answer could echo it; the message never holds the token.
        raise ValueError("the upload job's ClientToken is not the base64 of a 256-bit key: SSE-C needs one")
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
        body = response.read(ERROR_BODY_BYTES)
        if response.status >= 300:
            raise UploadRejectedError(rejection(response.status, body, headers))
        return response.status
    finally:
        connection.close()


def rejection(status: int, body: bytes, headers: dict[str, str]) -> str:
    """What to say about a rejected PUT: the status and S3's `Code: Message`, nothing else of the body.

    S3's error document can echo request values (an SSE-C error's `ArgumentValue` is the key itself), and a
    proxy's page anything: only the two elements are kept, cut short, with every header value redacted.
    """
    fields = _s3_error(body)
    if fields is None:
        return f"upload URL answered HTTP {status} (the body is no S3 error document)"
    text = ": ".join(value for value in fields if value)
    for secret in headers.values():
        if len(secret) >= 8:  # the key and its MD5, not `AES256`
            text = text.replace(secret, "[redacted]")
    return f"upload URL answered HTTP {status}: {text[:ERROR_TEXT_LIMIT]}"


def _s3_error(body: bytes) -> tuple[str, str] | None:
    """(Code, Message) of S3's XML error document, None when the body is none."""
    if b"<!" in body:  # no DOCTYPE or entity declarations: S3 sends none, and expansion is a risk
        return None
    try:
        # Safe without defusedxml (not in the Lambda): no declarations reach the parser, and at most 4 KB.
        root = ElementTree.fromstring(body)  # noqa: S314
    except ElementTree.ParseError:
        return None
    code = (root.findtext("Code") or "").strip()
    if root.tag != "Error" or not code:
        return None
    return code, " ".join((root.findtext("Message") or "").split())
