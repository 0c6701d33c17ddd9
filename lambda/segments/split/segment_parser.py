"""Streaming parser for Personalize batch segment job output: JSON lines in, CSV rows of user ids out.

One line of job output is one query:
`{"input": {"itemAttributes": "ITEMS.genres = \\"Action\\""}, "output": {"usersList": ["u1"]}, "error": null}`
(the Item-Attribute-Affinity documentation also shows
`{"itemAttributes": ..., "output": {"recommendedUsers": [...]}}`).
A line of a 5M-user segment is ~50 MB, so the user list is never held whole: the parser walks the line
in chunks, hands the users on in batches of one chunk, and keeps only the small values (query, error) whole.
Standard library only; the user list is decoded by `json.loads` over whole chunks, so it runs at C speed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

CHUNK_SIZE = 1 << 20
"""Bytes read from the job output at a time (also the size of the batches handed on)."""
MAX_SMALL_VALUE = 1 << 20
"""Largest value other than the user list (query, error, input object), and largest single user id."""
USER_LIST_KEYS = ("usersList", "recommendedUsers")
"""Where Personalize puts the users: `output.usersList` (seen in job output) or `recommendedUsers` (docs)."""
CSV_HEADER = "UserId"

# Inside a line only these are whitespace: a raw newline always ends the line (JSON escapes it in strings),
# which is what lets a malformed line be skipped without losing the next one.
_WS = b" \t\r"
_STRING = re.compile(rb'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null")
_STRUCTURE = re.compile(rb'[^"\[\]{}\n]*')
_ELEMENT = re.compile(rb'[ \t\r]*("[^"\\\n]*(?:\\.[^"\\\n]*)*")[ \t\r]*([,\]])')
_CLOSE = re.compile(rb"[ \t\r]*\]")
_CSV_SPECIALS = ',"\r\n'


class MalformedLineError(ValueError):
    """A line of job output that is not a valid query result; names the line so a person can find it."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


@dataclass
class ParsedLine:
    """What one line held, except its users (those went to the row sink as they were read)."""

    line: int
    values: dict[str, Any] = field(default_factory=dict)
    """Top-level values other than the user list (`input`, `itemAttributes`, `error`, ...)."""
    output: dict[str, Any] = field(default_factory=dict)
    """Values of the `output` object other than the user list."""
    has_user_list: bool = False
    user_count: int = 0
    """Distinct users: a repeated id is written and counted once, at its first (best) rank."""
    duplicate_users: int = 0
    problem: MalformedLineError | None = None
    seen: set[str] = field(default_factory=set, repr=False)
    """Ids of the line so far (dropped when the line is done): about 90 bytes per short id, 5M at most."""

    @property
    def query(self) -> str | None:
        """The query as Personalize states it: `itemAttributes` (input or top level), else the `itemId`."""
        query_input = self.values.get("input")
        for source in (query_input if isinstance(query_input, dict) else {}, self.values):
            for key in ("itemAttributes", "itemId"):
                value = source.get(key)
                if isinstance(value, str) and value:
                    return value if key == "itemAttributes" else f'ITEMS.itemId = "{value}"'
        return None

    @property
    def error(self) -> str | None:
        """Personalize's error for this query, or the reason the line could not be read."""
        if self.problem is not None:
            return str(self.problem)
        for source in (self.values, self.output):
            error = source.get("error")
            if error not in (None, "", {}):
                return error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
        return None


RowSink = Callable[[ParsedLine, bytes, int], None]
"""Receives CSV rows (UTF-8, without header) of `count` users of the line being read."""


def encode_rows(users: list[Any]) -> bytes:
    """CSV rows, one user id a line in the given order, quoted only where an id needs it; UTF-8."""
    try:
        text = "\n".join(users)
    except TypeError:
        raise ValueError("user ids must be JSON strings") from None
    if "" in users:
        # No user (Personalize ids are 1-256 characters); readers skip empty rows: it could not round-trip.
        raise ValueError("a user id is empty")
    # Fast path: nothing to quote.
    plain = not ('"' in text or "," in text or "\r" in text or text.count("\n") != len(users) - 1)
    if not plain:
        text = "\n".join(map(_quote, users))
    if users:
        text += "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a user id is not valid Unicode (lone surrogate escape)") from None


def _quote(user: str) -> str:
    # RFC 4180 quoting; the csv module would leave a lone CR unquoted with a LF line terminator.
    if not user or any(char in user for char in _CSV_SPECIALS):
        return '"' + user.replace('"', '""') + '"'
    return user


def csv_header() -> bytes:
    """The segment file's first line."""
    return f"{CSV_HEADER}\n".encode()


def parse_job_output(chunks: Iterable[bytes], on_rows: RowSink) -> Iterator[ParsedLine]:
    """Walk JSON lines given as byte chunks; yield each non-blank line once it is read completely.

    Users go to `on_rows` in batches as they are read (before the line is yielded); a malformed line is
    yielded with `problem` set and the parser resumes at the next line. Memory stays bounded by
    CHUNK_SIZE + MAX_SMALL_VALUE whatever the length of a line.
    """
    return _Scanner(chunks, on_rows).lines()


def iter_chunks(stream: Any, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of a binary stream (a file or an S3 StreamingBody) without reading it whole."""
    while chunk := stream.read(size):
        yield chunk


class _Scanner:
    """Incremental JSON-lines reader over a sliding byte buffer."""

    def __init__(self, chunks: Iterable[bytes], on_rows: RowSink) -> None:
        self._chunks = iter(chunks)
        self._on_rows = on_rows
        self._buf = b""
        self._pos = 0
        self._base = 0  # stream offset of self._buf[0]
        self._eof = False
        self._line = 1
        self._fast_path_failed_at = -1  # stream offset of a cut the fast path could not decode

    # ---- buffer ----

    def _fill(self) -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the stream."""
        if self._eof:
            return False
        for chunk in self._chunks:
            if chunk:
                self._base += self._pos
                self._buf = self._buf[self._pos :] + chunk
                self._pos = 0
                return True
        self._eof = True
        return False

    def _peek(self) -> int:
        """Next byte after in-line whitespace (-1 at the end of the stream); does not consume it."""
        while True:
            buf, pos, size = self._buf, self._pos, len(self._buf)
            while pos < size and buf[pos] in _WS:
                pos += 1
            self._pos = pos
            if pos < size:
                return buf[pos]
            if not self._fill():
                return -1

    def _expect(self, char: bytes, what: str) -> None:
        found = self._peek()
        if found != char[0]:
            raise self._malformed(f"expected {what}, found {self._describe(found)}")
        self._pos += 1

    def _malformed(self, message: str) -> MalformedLineError:
        return MalformedLineError(self._line, message)

    @staticmethod
    def _describe(byte: int) -> str:
        if byte == -1:
            return "the end of the file"
        if byte == ord("\n"):
            return "the end of the line"
        return repr(chr(byte)) if byte < 128 else f"byte 0x{byte:02x}"

    def _skip_rest_of_line(self) -> None:
        while True:
            newline = self._buf.find(b"\n", self._pos)
            if newline >= 0:
                self._pos = newline + 1
                self._line += 1
                return
            self._pos = len(self._buf)
            if not self._fill():
                return

    # ---- lines ----

    def lines(self) -> Iterator[ParsedLine]:
        while True:
            byte = self._peek()
            if byte == -1:
                return
            if byte == ord("\n"):  # blank line
                self._pos += 1
                self._line += 1
                continue
            parsed = ParsedLine(line=self._line)
            try:
                self._object(parsed)
                end = self._peek()
                if end not in (-1, ord("\n")):
                    raise self._malformed(f"unexpected {self._describe(end)} after the end of the object")
            except MalformedLineError as problem:
                parsed.problem = problem
            except ValueError as problem:  # from decoding or encoding values
                parsed.problem = self._malformed(str(problem))
            self._skip_rest_of_line()
            parsed.seen = set()  # free the line's ids before the next line fills its own
            yield parsed

    def _object(self, parsed: ParsedLine) -> None:
        self._expect(b"{", "a JSON object ('{')")
        self._members(parsed, parsed.values, top_level=True)

    def _members(self, parsed: ParsedLine, into: dict[str, Any], *, top_level: bool) -> None:
        """Members of an object whose '{' was consumed, up to and including its '}'."""
        if self._peek() == ord("}"):
            self._pos += 1
            return
        while True:
            if self._peek() != ord('"'):
                raise self._malformed(f"expected a member name, found {self._describe(self._peek())}")
            key = self._small_value()
            if not isinstance(key, str):  # pragma: no cover - a '"' always starts a string
                raise self._malformed("member names must be strings")
            self._expect(b":", "':'")
            if key in USER_LIST_KEYS and self._peek() == ord("["):
                if parsed.has_user_list:
                    raise self._malformed("the line holds more than one user list")
                parsed.has_user_list = True
                self._users(parsed)
            elif top_level and key == "output" and self._peek() == ord("{"):
                self._pos += 1
                self._members(parsed, parsed.output, top_level=False)
            else:
                into[key] = self._small_value()
            separator = self._peek()
            self._pos += 1
            if separator == ord("}"):
                return
            if separator != ord(","):
                self._pos -= 1
                raise self._malformed(f"expected ',' or '}}', found {self._describe(separator)}")

    # ---- small values (anything but the user list) ----

    def _small_value(self) -> Any:
        if self._peek() == -1:
            raise self._malformed("unexpected end of the file, expected a value")
        while True:
            end = self._value_end(self._buf, self._pos)
            if end is not None:
                break
            if len(self._buf) - self._pos > MAX_SMALL_VALUE:
                raise self._malformed(f"a value is longer than {MAX_SMALL_VALUE} bytes")
            if not self._fill():
                raise self._malformed("unexpected end of the file inside a value")
        raw = self._buf[self._pos : end]
        try:
            value = json.loads(raw)
        except ValueError as error:
            raise self._malformed(f"invalid JSON value {raw[:80]!r}: {error}") from None
        self._pos = end
        return value

    def _value_end(self, buf: bytes, pos: int) -> int | None:
        """End offset of the JSON value starting at `pos`, None if the buffer ends before it does."""
        first = buf[pos]
        if first == ord('"'):
            return self._string_end(buf, pos)
        if first in b"[{":
            depth = 0
            while True:
                pos = _STRUCTURE.match(buf, pos).end()  # type: ignore[union-attr]
                if pos >= len(buf):
                    return None
                char = buf[pos]
                if char == ord('"'):
                    string_end = self._string_end(buf, pos)
                    if string_end is None:
                        return None
                    pos = string_end
                    continue
                if char == ord("\n"):
                    raise self._malformed("the line ends inside an object or array")
                depth += 1 if char in b"[{" else -1
                pos += 1
                if depth == 0:
                    return pos
        match = _SCALAR.match(buf, pos)
        if match is None and len(buf) - pos < len(b"false") and not self._eof:
            return None  # the chunk may cut `false` after `fal`
        if match is None:
            raise self._malformed(f"expected a JSON value, found {self._describe(first)}")
        if match.end() == len(buf) and not self._eof:
            return None  # `nu` + `ll`, `12` + `3`: the chunk may cut a scalar
        return match.end()

    def _string_end(self, buf: bytes, pos: int) -> int | None:
        match = _STRING.match(buf, pos)
        if match is not None:
            return match.end()
        if buf.find(b"\n", pos) >= 0:
            raise self._malformed("the line ends inside a string")
        return None

    # ---- the user list ----

    def _users(self, parsed: ParsedLine) -> None:
        """Stream the user list (its '[' next) to the row sink, a chunk's worth of ids at a time."""
        self._expect(b"[", "'['")
        expecting_first = True
        pending: list[Any] = []  # ids decoded one by one on the slow path, sent on together
        while True:
            buf, pos = self._buf, self._pos
            # Fast path: cut the buffer after the last complete id of this line and let json.loads decode
            # everything before the cut in one call. A cut inside a string makes the slice invalid JSON
            # (it would end in an unterminated string), so a successful decode proves the cut.
            if self._base + pos > self._fast_path_failed_at:
                line_end = buf.find(b"\n", pos)
                cut = buf.rfind(b'",', pos, len(buf) if line_end < 0 else line_end)
                while cut > pos and _escaped(buf, cut):
                    cut = buf.rfind(b'",', pos, cut)
                if cut > pos:
                    try:
                        users = json.loads(b"[" + buf[pos : cut + 1] + b"]")
                    except ValueError:
                        self._fast_path_failed_at = self._base + cut
                    else:
                        self._emit(parsed, pending)
                        self._emit(parsed, users)
                        self._pos = cut + 2
                        expecting_first = False
                        continue
            # Slow path, one id at a time: the list's last id, ids near a cut the fast path refused,
            # and precise errors.
            match = _ELEMENT.match(buf, pos)
            if match is not None:
                pending.append(self._decode_string(match.group(1)))
                self._pos = match.end()
                expecting_first = False
                if match.group(2) == b"]":
                    self._emit(parsed, pending)
                    return
                continue
            self._emit(parsed, pending)
            close = _CLOSE.match(buf, pos)
            if close is not None:
                if not expecting_first:
                    raise self._malformed("expected a user id after ',' in the user list")
                self._pos = close.end()
                return
            if buf.find(b"\n", pos) >= 0 or self._eof:
                found = self._peek()
                if found not in (ord('"'), -1, ord("\n")):
                    raise self._malformed(f"expected a user id string, found {self._describe(found)}")
                raise self._malformed("the line ends inside the user list")
            if len(buf) - pos > MAX_SMALL_VALUE:
                raise self._malformed(f"a user id is longer than {MAX_SMALL_VALUE} bytes")
            if not self._fill():
                raise self._malformed("the file ends inside the user list")

    def _decode_string(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as error:
            raise self._malformed(f"invalid user id {raw[:80]!r}: {error}") from None

    def _emit(self, parsed: ParsedLine, users: list[Any]) -> None:
        if not users:
            return
        try:
            fresh = first_occurrences(users, parsed.seen)
            rows = encode_rows(fresh)
        except ValueError as error:
            raise self._malformed(str(error)) from None
        count = len(fresh)  # `fresh` may be `users` itself, cleared below
        parsed.duplicate_users += len(users) - count
        users.clear()
        if count:
            parsed.user_count += count
            self._on_rows(parsed, rows, count)


def first_occurrences(users: list[Any], seen: set[str]) -> list[Any]:
    """The ids of `users` not in `seen`, each once, in order; adds them to `seen`.

    Set operations run in C, so the common case (no repeat) costs two passes at C speed, no Python loop.
    """
    try:
        if seen.isdisjoint(users):
            before = len(seen)
            seen.update(users)
            if len(seen) - before == len(users):
                return users
            return list(dict.fromkeys(users))  # repeats within the batch only
        fresh = [user for user in dict.fromkeys(users) if user not in seen]
    except TypeError:  # an unhashable JSON value (list, object) among the ids
        raise ValueError("user ids must be JSON strings") from None
    seen.update(fresh)
    return fresh


def _escaped(buf: bytes, quote: int) -> bool:
    """Whether the quote at `quote` is escaped (preceded by an odd number of backslashes)."""
    backslashes = 0
    while quote - backslashes - 1 >= 0 and buf[quote - backslashes - 1] == ord("\\"):
        backslashes += 1
    return backslashes % 2 == 1
