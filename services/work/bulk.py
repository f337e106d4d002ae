"""Bulk intake: CSV or NDJSON files read as a stream, row by row, in batches.

Each row is accepted (a task is created) or rejected with its row number, field
and message; a bad row never costs a good one unless the client asked for all
or nothing. Rows are numbered from 1, not counting a CSV header.

CSV: a header row, UTF-8 with or without BOM. The columns ``title``,
``external_ref``, ``case_ref``, ``priority`` and ``language`` are the task's; every other
column is a payload field, its text converted to the type the kind's schema
declares (integer, number, boolean; JSON for arrays and objects).
NDJSON: one JSON object per line, shaped like the body of ``POST /v1/tasks``
without ``queue_id``.
"""

from __future__ import annotations

import codecs
import csv
import enum
import gc
import io
import itertools
import json
import re
import secrets
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.core.bulk_rows import CopyRows
from services.core.database import driver_cursor
from services.core.errors import BadRequest, ValidationFailed
from services.core.ids import new_id
from services.core.time import utcnow
from services.work import history, kinds
from services.work.bulk_insert import formatted, insert_created
from services.work.history import Actor
from services.work.models import Queue, Task
from services.work.schemas import TaskCreate
from services.work.service import task_values
from tenants.scoping import narrowed_to

TASK_COLUMNS = ("title", "external_ref", "case_ref", "priority", "language")
BATCH_ROWS = 5000  # rows per transaction and per statement: fewer round trips and commits, bounded memory
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class FileFormat(enum.StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"

    @classmethod
    def of_media_type(cls, content_type: str) -> FileFormat | None:
        essence = content_type.partition(";")[0].strip().lower()
        return {
            "text/csv": cls.CSV,
            "application/x-ndjson": cls.NDJSON,
            "application/ndjson": cls.NDJSON,
            "application/jsonl": cls.NDJSON,
        }.get(essence)


@dataclass
class RowOutcome:
    row: int
    task_id: uuid.UUID | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (field, message)

    def json_line(self) -> bytes:
        """``as_json`` as one line of JSON (an accepted row's without the encoder: most rows are)."""
        if self.task_id is not None:
            return b'{"row": %d, "status": "accepted", "id": "%s"}\n' % (self.row, str(self.task_id).encode())
        return json.dumps(self.as_json()).encode() + b"\n"

    def as_json(self) -> dict[str, Any]:
        if self.task_id is not None:
            return {"row": self.row, "status": "accepted", "id": str(self.task_id)}
        return {
            "row": self.row,
            "status": "rejected",
            "errors": [{"field": name, "message": message} for name, message in self.errors],
        }


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    rows: list[RowOutcome] = field(default_factory=list)

    def add(self, outcome: RowOutcome) -> None:
        if outcome.task_id is None:
            self.rejected += 1
        else:
            self.accepted += 1
        self.rows.append(outcome)


# A record is a row number and either the fields of a task or why the row cannot be read.
Record = tuple[int, dict[str, Any] | list[tuple[str, str]]]


def text_stream(binary: IO[bytes]) -> io.TextIOWrapper:
    """UTF-8, a BOM skipped; bytes that are not UTF-8 fail the read (see ``decoding_errors``)."""
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")


def check_readable(
    binary: IO[bytes], file_format: FileFormat, kind: kinds.Kind, delimiter: str = ","
) -> None:
    """The whole file is UTF-8 and a CSV has a usable header: checked before a row is taken,
    so that an import committed in batches never stops half-way on a file-level problem."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        while chunk := binary.read(1024 * 1024):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc) from None
    binary.seek(0)
    if file_format is FileFormat.CSV:
        next(records(binary, file_format, kind, delimiter), None)  # reads the header and one row
        binary.seek(0)


def _not_utf8(exc: UnicodeDecodeError) -> BadRequest:
    return BadRequest(
        f"the file is not valid UTF-8 (found byte {exc.object[exc.start]:#04x}); save it as UTF-8",
        extra={"problem": "encoding"},
    )


def records(
    binary: IO[bytes], file_format: FileFormat, kind: kinds.Kind, delimiter: str = ","
) -> Generator[Record]:
    try:
        if file_format is FileFormat.NDJSON:
            yield from _ndjson_records(binary)
            return
        text = text_stream(binary)
        try:
            yield from _csv_records(text, kind, delimiter)
        finally:
            text.detach()  # the caller's file stays open (it may report progress from it)
    except UnicodeDecodeError as exc:
        raise _not_utf8(exc) from None


def _csv_records(text: io.TextIOWrapper, kind: kinds.Kind, delimiter: str) -> Iterator[Record]:
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise BadRequest("the file is empty: a header row is needed", extra={"problem": "header"}) from None
    except csv.Error as exc:
        raise BadRequest(f"the header row is not valid CSV: {exc}", extra={"problem": "header"}) from None
    _check_header(header, kind, delimiter)
    properties = kind.schema.get("properties", {})
    row = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row += 1
            yield row, [("", f"unreadable CSV: {exc}")]
            continue
        row += 1
        if not any(cells):
            row -= 1  # blank lines (often the last one) are not rows
            continue
        if len(cells) != len(header):
            yield row, [("", f"{len(cells)} values for {len(header)} columns")]
            continue
        yield row, _csv_fields(dict(zip(header, cells, strict=True)), properties)


def _check_header(header: list[str], kind: kinds.Kind, delimiter: str) -> None:
    if len(header) == 1:
        others = [d for d in DELIMITERS if d != delimiter and d in header[0]]
        if others:
            found = others[0]
            raise BadRequest(
                f"the header is one column holding {DELIMITERS[found]}s: the file seems {DELIMITERS[found]}-"
                f"separated; send delimiter={found!r} or save it with {DELIMITERS[delimiter]}s",
                extra={"problem": "delimiter", "delimiter": found},
            )
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise BadRequest(f"columns named twice: {', '.join(duplicates)}", extra={"problem": "header"})
    required = ["title", *kind.schema.get("required", [])]
    missing = [name for name in required if name not in header]
    if missing:
        raise BadRequest(
            f"missing required column(s): {', '.join(missing)}; the header has: {', '.join(header)}",
            extra={"problem": "columns", "missing": missing},
        )


def _csv_fields(values: dict[str, str], properties: dict[str, Any]) -> dict[str, Any] | list[tuple[str, str]]:
    task: dict[str, Any] = {"payload": {}}
    errors: list[tuple[str, str]] = []
    for column, raw in values.items():
        if raw == "":
            continue  # an empty cell is an absent value
        if column in TASK_COLUMNS:
            task[column] = raw
            continue
        try:
            task["payload"][column] = typed_value(raw, properties.get(column, {}))
        except (ValueError, RecursionError) as exc:
            errors.append((column, str(exc) or "nested too deeply"))
    return errors or task


def typed_value(raw: str, schema: dict[str, Any]) -> Any:
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared]
    text = raw.strip()
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            if types == ["integer"]:
                raise ValueError(f"{raw!r} is not a whole number") from None
    if "number" in types:
        try:
            return float(text.replace(",", ".")) if "." in text or "," in text else int(text)
        except ValueError:
            if types == ["number"]:
                raise ValueError(f"{raw!r} is not a number") from None
    if "boolean" in types:
        lowered = text.lower()
        if lowered in {"true", "yes", "1"}:
            return True
        if lowered in {"false", "no", "0"}:
            return False
        if types == ["boolean"]:
            raise ValueError(f"{raw!r} is not true or false")
    if "array" in types or "object" in types:
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"{raw!r} is not JSON") from None
    return raw


def _ndjson_records(binary: IO[bytes]) -> Iterator[Record]:
    """Lines read as bytes: checked as UTF-8 and parsed without a text stream between."""
    row = 0
    for number, line in enumerate(binary):
        if number == 0:
            line = line.removeprefix(codecs.BOM_UTF8)
        line.decode()  # a file that is not UTF-8 is refused whole (see ``records``)
        if not line.strip():
            continue
        row += 1
        try:
            value = _json_value(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python goes
            yield row, [("", f"not JSON: {exc or 'nested too deeply'}")]
            continue
        if not isinstance(value, dict):
            yield row, [("", "each line must be a JSON object")]
            continue
        yield row, value


# orjson parses a line several times faster, but turns an integer past 64 bits into a float:
# a line that may hold one (19 digits in a row) goes to the standard parser, which keeps it.
# Counting its digits first is cheaper than searching for a run of them.
_NOT_DIGITS = bytes(byte for byte in range(256) if byte not in b"0123456789")
_LONG_DIGITS = re.compile(rb"[0-9][0-9]{18}")  # written so: several times faster than \d{19}


def _json_value(line: bytes) -> Any:
    may_hold_long = len(line.translate(None, _NOT_DIGITS)) >= 19 and _LONG_DIGITS.search(line)
    return json.loads(line) if may_hold_long else orjson.loads(line)


def _field_of(pointer_or_loc: Iterable[Any], file_format: FileFormat) -> str:
    """Where the error is, as the client named it: the CSV column, or a dotted path in NDJSON."""
    parts = [str(p) for p in pointer_or_loc]
    if file_format is FileFormat.CSV and parts[:1] == ["payload"] and len(parts) > 1:
        return parts[1]
    return ".".join(parts)


def _pointer_parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def import_records(
    session: Session,
    actor: Actor,
    queue: Queue,
    source: Iterable[Record],
    file_format: FileFormat,
    *,
    detect_language: bool,
    all_or_nothing: bool = False,
    commit_batches: bool = True,
    on_batch: Callable[[Session, Summary], None] | None = None,
    spare: Session | None = None,
) -> Summary:
    """Take in every good row; with ``all_or_nothing``, take in nothing if a row is bad
    (the caller rolls back). Batches are committed as they go unless told not to.

    A batch is read and validated while the one before it is written: Python's work and
    the database's overlap. Only a writer thread uses a session while it writes; the
    reading side needs no database (``service.task_values``).

    ``spare``: a second session of the same scope (a worker's job). When batches are
    committed on PostgreSQL, two batches are then written at once, one on each
    connection, the database's work on both cores. Each waits for the batch before it to
    commit before it counts its rows and commits, so that what is committed is always
    the file's first rows, as a resumed job expects (``on_batch`` gets the writing
    session). The cycle collector then also waits (``import_pace``)."""
    kind = kinds.require(session, queue.tenant_id, queue.task_kind)
    format_ahead = session.get_bind().dialect.name == "postgresql"  # tasks are COPY-ed there
    commit = commit_batches and not all_or_nothing
    sessions = [session, spare] if spare is not None and commit and format_ahead else [session]
    turns = secrets.randbelow(2**31) if len(sessions) > 1 else None  # this import's lock key
    summary = Summary()
    seen_refs: set[str] = set()
    writing: deque[Future[None]] = deque()
    with (
        import_pace(pause_collector=len(sessions) > 1),
        ThreadPoolExecutor(max_workers=len(sessions), thread_name_prefix="bulk-writer") as writers,
    ):
        for number, batch in enumerate(_batches(source)):
            outcomes, tasks = _prepared(queue, kind, actor, batch, file_format, seen_refs, detect_language)
            copy = formatted([values for _outcome, values in tasks]) if format_ahead else None
            if len(writing) == len(sessions):
                writing.popleft().result()  # raises what the write raised; frees its session
            writer = sessions[number % len(sessions)]
            turn = None
            if turns is not None:
                turn = (turns, number)
                _take_turn(writer, turn)  # before the next batch can wait for it
            write = _BatchWrite(outcomes, tasks, copy, commit, turn)
            after = writing[-1] if writing else None
            writing.append(
                writers.submit(_write_batch, writer, actor, queue, write, summary, on_batch, after)
            )
        for pending in writing:
            pending.result()
    return summary


HANDOFF_SECONDS = 0.0005
_pace: dict[str, Any] = {"users": 0, "switch_interval": 0.0, "pausing": 0, "collecting": True}
_pace_lock = threading.Lock()


@contextmanager
def import_pace(pause_collector: bool = False) -> Iterator[None]:
    """Process-wide settings while imports run, each restored by the last one:

    - the writer threads, back from the database, take the interpreter within
      ``HANDOFF_SECONDS`` instead of Python's 5 ms: a batch's ``COPY`` alone waits a
      couple of dozen times;
    - with ``pause_collector`` (a worker's job, in a process of its own), the cycle
      collector waits: batches in flight are tens of thousands of young objects that it
      would traverse again and again, for nothing (rows hold no cycles). It cost 40% of
      an import's Python time (bench/intake.py: 100,000 rows, 5.7 to 3.2 s of CPU). Not
      in the API process, whose requests go on meanwhile."""
    with _pace_lock:
        if _pace["users"] == 0:
            _pace["switch_interval"] = sys.getswitchinterval()
            sys.setswitchinterval(HANDOFF_SECONDS)
        _pace["users"] += 1
        if pause_collector:
            if _pace["pausing"] == 0:
                _pace["collecting"] = gc.isenabled()
                gc.disable()
            _pace["pausing"] += 1
    try:
        yield
    finally:
        with _pace_lock:
            _pace["users"] -= 1
            if _pace["users"] == 0:
                sys.setswitchinterval(_pace["switch_interval"])
            if pause_collector:
                _pace["pausing"] -= 1
                if _pace["pausing"] == 0 and _pace["collecting"]:
                    gc.enable()


def _batches(source: Iterable[Record]) -> Iterator[list[Record]]:
    records = iter(source)
    while batch := list(itertools.islice(records, BATCH_ROWS)):
        yield batch


def _prepared(
    queue: Queue,
    kind: kinds.Kind,
    actor: Actor,
    batch: list[Record],
    file_format: FileFormat,
    seen_refs: set[str],
    detect_language: bool,
) -> tuple[list[RowOutcome], list[tuple[RowOutcome, dict[str, Any]]]]:
    """Every row's outcome so far (in the file's order), and the tasks of the good rows."""
    outcomes: list[RowOutcome] = []
    prepared: list[tuple[RowOutcome, dict[str, Any]]] = []
    now = utcnow()  # the batch's tasks are created together
    for row, content in batch:
        outcome = RowOutcome(row)
        outcomes.append(outcome)
        if isinstance(content, list):
            outcome.errors = content
            continue
        values = _prepare_row(queue, kind, content, file_format, outcome, detect_language, now)
        if values is not None:
            prepared.append((outcome, values))
    _refuse_repeated_refs(prepared, seen_refs)
    tasks = []
    for outcome, values in prepared:
        if not outcome.errors:
            values.update(id=new_id(), created_by=actor.id)
            tasks.append((outcome, values))
    return outcomes, tasks


@dataclass
class _BatchWrite:
    outcomes: list[RowOutcome]  # every row of the batch, in the file's order
    tasks: list[tuple[RowOutcome, dict[str, Any]]]  # the good rows' tasks
    copy: CopyRows | None  # the tasks, formatted ahead for COPY
    commit: bool
    turn: tuple[int, int] | None  # (import, batch number): its lock, with two writers


class PreviousBatchFailed(RuntimeError):
    """The batch before this one failed: this one is not committed either."""


# An advisory lock a batch's transaction holds until it ends, and that the next batch takes
# to wait for it: a wait PostgreSQL sees, so that a deadlock with another import (each
# holding references the other inserts) is found and broken, never an endless wait.
_TURN = "SELECT pg_advisory_xact_lock(%s, %s)"


def _take_turn(session: Session, turn: tuple[int, int]) -> None:
    with driver_cursor(session.connection()) as cursor:
        cursor.execute(_TURN, turn)


def _write_batch(
    session: Session,
    actor: Actor,
    queue: Queue,
    write: _BatchWrite,
    summary: Summary,
    on_batch: Callable[[Session, Summary], None] | None,
    after: Future[None] | None,
) -> None:
    try:
        _write(session, actor, queue, write, summary, on_batch, after)
    except BaseException:
        if write.turn is not None:
            session.rollback()  # ends its turn now: the next batch is waiting for it
        raise


def _write(
    session: Session,
    actor: Actor,
    queue: Queue,
    write: _BatchWrite,
    summary: Summary,
    on_batch: Callable[[Session, Summary], None] | None,
    after: Future[None] | None,
) -> None:
    # Straight to bulk inserts: the ORM's unit of work costs more than the rest of a row. A
    # reference already taken is found by the unique index as the row goes in.
    tasks = write.tasks
    refused = insert_created(session, actor, [values for _outcome, values in tasks], write.copy)
    taken = (
        [values["external_ref"] for _outcome, values in tasks if values["id"] in refused] if refused else []
    )
    holders = _holders(session, queue.tenant_id, taken) if taken else {}
    for outcome, values in tasks:
        if refused and values["id"] in refused:
            outcome.errors = [
                ("external_ref", f"already used by task {holders.get(values['external_ref'], '')}")
            ]
        else:
            outcome.task_id = values["id"]
    history.recorded_many(session, [values for outcome, values in tasks if outcome.task_id])
    if after is not None:  # the batch before is counted and committed first
        if write.turn is not None:
            import_id, number = write.turn
            _take_turn(session, (import_id, number - 1))
        if after.exception() is not None:
            raise PreviousBatchFailed(f"batch {write.turn} not committed: the one before it failed")
    for outcome in write.outcomes:
        summary.add(outcome)
    if on_batch:
        on_batch(session, summary)  # in the batch's transaction: its progress is kept with its rows
    if write.commit:
        session.commit()
        session.expunge_all()  # the identity map would otherwise hold every task of the file


def _prepare_row(
    queue: Queue,
    kind: kinds.Kind,
    content: dict[str, Any],
    file_format: FileFormat,
    outcome: RowOutcome,
    detect_language: bool,
    now: datetime,
) -> dict[str, Any] | None:
    given_queue = content.pop("queue_id", None)
    if given_queue is not None and str(given_queue) != str(queue.id):
        outcome.errors = [("queue_id", "differs from the queue_id of the request")]
        return None
    try:
        data = TaskCreate.model_validate({**content, "queue_id": queue.id})
    except ValidationError as exc:
        outcome.errors = [(_field_of(e["loc"], file_format), e["msg"]) for e in exc.errors()]
        return None
    try:
        return task_values(queue, kind, data, detect_language=detect_language, now=now)
    except ValidationFailed as exc:
        outcome.errors = [(_field_of(_pointer_parts(e.pointer), file_format), e.message) for e in exc.errors]
        return None


def _refuse_repeated_refs(prepared: list[tuple[RowOutcome, dict[str, Any]]], seen_refs: set[str]) -> None:
    """A reference used by an earlier row of the same file rejects the row."""
    for outcome, values in prepared:
        ref = values["external_ref"]
        if ref is None:
            continue
        if ref in seen_refs:
            outcome.errors = [("external_ref", "used by an earlier row of this file")]
        else:
            seen_refs.add(ref)


def _holders(session: Session, tenant_id: uuid.UUID, refs: list[str]) -> dict[str, uuid.UUID]:
    """The tasks that hold these references (few: only the rejected rows' ones)."""
    with narrowed_to(session, tenant_id):
        found = session.execute(select(Task.external_ref, Task.id).where(Task.external_ref.in_(refs))).all()
    return {str(ref): task_id for ref, task_id in found}
