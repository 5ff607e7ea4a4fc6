"""What only the hub's routes need on top of the shared ASGI kit
(``edge_agent.contract.asgi``): the enrolment bearer token and byte ranges for resumable
bundle downloads."""
from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.contract.asgi import HTTPError, Scope, header

_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # 18 digits: any file, no bignum


def bearer(scope: Scope) -> str:
    scheme, _, token = (header(scope, b"authorization") or b"").partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise HTTPError(401, "missing bearer token (the agent's enrolment token)")
    return token.strip().decode("latin-1")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive
    partial: bool  # answer 206 with Content-Range


def parse_range(value: bytes | None, size: int) -> ByteRange:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110); none means the whole file.
    A range that starts past the end is 416, as a client resuming a changed file must learn."""
    if value is None:
        return ByteRange(0, size - 1, False)
    match = _RANGE.match(value.decode("latin-1").strip())
    if match is None or match[1] == match[2] == "":
        raise HTTPError(416, f"unsupported Range {value.decode('latin-1')!r}: "
                             "one bytes=START-[END] range only")
    if match[1] == "":  # the last n bytes; the last 0 bytes is no range at all
        n = int(match[2])
        if n == 0 or size == 0:
            raise HTTPError(416, f"range of the last {n} bytes of a {size} byte bundle "
                                 "is empty")
        return ByteRange(max(size - n, 0), size - 1, True)
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        raise HTTPError(416, f"range start {start} is outside the {size} byte bundle")
    return ByteRange(start, end, True)
