"""What an attachment is, told from its first bytes; the file name is only a hint among text kinds.

Binary formats come from ``filetype`` (magic numbers, including OOXML and ODF
packages whose identifying entries open the zip, as Office and the ODF spec
write them). We add what it leaves out: OOXML packages whose identifying entries
come later in the head (LibreOffice's order, extra parts first), the text kinds
and e-mail.

Sniffing works on the head alone (``storage.HEAD_BYTES``, 8 KiB), never on the
whole file: both stores hand the head back from ``put`` without a second read,
and unpacking a client's archive on the request path would invite zip bombs.
The cost: a zip whose first 8 KiB name no Office or ODF part is reported as
``application/zip``, which queues do not accept by default.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator

import filetype

OCTET_STREAM = "application/octet-stream"
ZIP = "application/zip"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
TEXT = "text/plain"
CSV = "text/csv"
HTML = "text/html"
JSON = "application/json"
XML = "application/xml"
EML = "message/rfc822"

DEFAULT_ACCEPTED_TYPES: frozenset[str] = frozenset(
    {
        PDF,
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/tiff",
        "image/webp",
        DOCX,
        XLSX,
        PPTX,
        ODT,
        ODS,
        ODP,
        CSV,
        TEXT,
        JSON,
        XML,
        EML,
    }
)

_ZIP_MAGIC = b"PK\x03\x04"
_ZIP_NAME_OFFSET = 30  # a local file header is 30 bytes, then the entry's name
# An OOXML package (OPC) has one of these; the part folder then says which kind.
_OPC_MARKERS = ("[Content_Types].xml", "_rels/.rels", "docProps/")
_OOXML_BY_FOLDER = (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX))
_ODF_PREFIX = "application/vnd.oasis.opendocument."

# C0 controls that no text file holds (tab, newlines, form feed and escape are allowed).
_BINARY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_HEADER_FIELD = re.compile(r"[!-9;-~]+:")  # RFC 5322 field name: printable ASCII but ":"
_MAIL_FIELDS = frozenset(
    {"from", "to", "cc", "subject", "date", "message-id", "received", "return-path", "mime-version"}
)


def sniff(head: bytes, filename: str | None = None) -> str:
    """The MIME type of a file whose first bytes (up to 8 KiB) are head."""
    kind = filetype.guess(head) if head else None
    if kind is not None and kind.mime != ZIP:
        return str(kind.mime)
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(head)
    text = _as_text(head)
    if not text:
        return OCTET_STREAM
    return _sniff_text(text, (filename or "").lower())


def accepts(accepted: Iterable[str], mime: str) -> bool:
    """Whether mime is one of accepted, which may hold wildcards ("image/*", "*/*")."""
    mime = _essence(mime)
    major = mime.partition("/")[0]
    for pattern in map(_essence, accepted):
        if pattern in (mime, "*/*") or (pattern.endswith("/*") and pattern[:-2] == major):
            return True
    return False


def _essence(mime: str) -> str:
    return mime.partition(";")[0].strip().lower()


def _sniff_zip(head: bytes) -> str:
    odf = _odf_mimetype(head)
    if odf is not None:
        return odf
    names = list(_zip_entry_names(head))
    if any(name.startswith(_OPC_MARKERS) for name in names):
        for name in names:
            for folder, mime in _OOXML_BY_FOLDER:
                if name.startswith(folder):
                    return mime
    return ZIP


def _odf_mimetype(head: bytes) -> str | None:
    """ODF's first entry is "mimetype", stored uncompressed, holding the document's type."""
    method = int.from_bytes(head[8:10], "little")
    size = int.from_bytes(head[18:22], "little")
    name_length = int.from_bytes(head[26:28], "little")
    extra_length = int.from_bytes(head[28:30], "little")
    start = _ZIP_NAME_OFFSET + name_length
    if method != 0 or head[_ZIP_NAME_OFFSET:start] != b"mimetype":
        return None
    declared = head[start + extra_length :][:size].decode("ascii", "replace")
    return declared if declared.startswith(_ODF_PREFIX) else None


def _zip_entry_names(head: bytes) -> Iterator[str]:
    # Jumps from one local header signature to the next rather than by the
    # recorded sizes, which streaming writers leave at zero (data descriptors).
    at = head.find(_ZIP_MAGIC)
    while at != -1 and at + _ZIP_NAME_OFFSET <= len(head):
        length = int.from_bytes(head[at + 26 : at + 28], "little")
        yield head[at + _ZIP_NAME_OFFSET : at + _ZIP_NAME_OFFSET + length].decode("utf-8", "replace")
        at = head.find(_ZIP_MAGIC, at + _ZIP_NAME_OFFSET + length)


def _as_text(head: bytes) -> str | None:
    """head as UTF-8 text, or None when it is not text.

    Incremental so that a character cut by the 8 KiB boundary does not make a
    text file binary; "-sig" drops a byte order mark.
    """
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return None if _BINARY_CONTROLS.search(text) else text


def _sniff_text(text: str, filename: str) -> str:
    start = text.lstrip()
    if start.startswith("<?xml") or (start.startswith("<") and filename.endswith(".xml")):
        return XML
    if start[:14].lower() == "<!doctype html" or start[:5].lower() == "<html":
        # Recognised so that it is not accepted as harmless plain text.
        return HTML
    if filename.endswith(".csv"):
        return CSV
    if start.startswith(("{", "[")) or (filename.endswith(".json") and _parses_as_json(text)):
        return JSON
    if _looks_like_mail(text, named_eml=filename.endswith(".eml")):
        return EML
    return TEXT


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _looks_like_mail(text: str, *, named_eml: bool) -> bool:
    """A header block (fields and folded lines up to a blank line) naming mail fields.

    Two well-known fields are needed, one when the name says .eml, so that a note
    that happens to start with "To: the team" stays plain text.
    """
    lines = text.splitlines()
    # Without a blank line the head may end inside the header block: drop its last, maybe cut, line.
    block = lines[: lines.index("")] if "" in lines else lines[:-1]
    fields: set[str] = set()
    for number, line in enumerate(block):
        if line[0] in " \t" and number > 0:
            continue  # folded continuation of the previous field
        match = _HEADER_FIELD.match(line)
        if match is None:
            return False
        fields.add(match.group()[:-1].lower())
    return len(fields & _MAIL_FIELDS) >= (1 if named_eml else 2)
