"""JSON pointers (RFC 6901) for error reports."""

from __future__ import annotations

import json
from collections.abc import Iterable


def escape(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def from_path(path: Iterable[str | int]) -> str:
    return "".join(f"/{escape(part)}" for part in path)


def of_syntax_error(text: str, error: json.JSONDecodeError) -> str:
    """The pointer of the innermost value being read where a JSON text breaks.

    Scans the text up to the error position, tracking the containers entered
    and the member name or index within each: enough to tell a client which
    part of a large document is malformed, where the parser only gives a column.
    """
    stack: list[list[str | int | None]] = []  # per container: [kind, key-or-index]
    position, limit = 0, min(error.pos, len(text))
    expecting_key = False
    while position < limit:
        char = text[position]
        if char == '"':
            end = position + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            if expecting_key and stack:
                try:
                    stack[-1][1] = json.loads(text[position : end + 1])
                except json.JSONDecodeError:
                    stack[-1][1] = text[position + 1 : end]
                expecting_key = False
            position = end + 1
            continue
        if char == "{":
            stack.append(["object", None])
            expecting_key = True
        elif char == "[":
            stack.append(["array", 0])
        elif char in "}]":
            if stack:
                stack.pop()
        elif char == ",":
            if stack and stack[-1][0] == "array":
                stack[-1][1] = int(stack[-1][1] or 0) + 1
            elif stack:
                expecting_key = True
        position += 1
    return from_path(key for _kind, key in stack if key is not None)
