"""Attachment types are told from real bytes, built here, whatever the file is called."""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
import zlib

import pytest

from services.work.sniffing import (
    CSV,
    DEFAULT_ACCEPTED_TYPES,
    DOCX,
    EML,
    HTML,
    JSON,
    OCTET_STREAM,
    ODS,
    ODT,
    PDF,
    PPTX,
    TEXT,
    XLSX,
    XML,
    ZIP,
    accepts,
    sniff,
)
from services.work.storage import HEAD_BYTES


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png() -> bytes:
    """A valid 1x1 RGB image."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte, then one red pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def make_pdf() -> bytes:
    return (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )


def make_jpeg() -> bytes:
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def make_gif() -> bytes:
    return (
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff"
        b"!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )


def make_tiff() -> bytes:
    # Little-endian header, then an IFD with one entry (ImageWidth = 1).
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<HHHII", 1, 256, 3, 1, 1) + b"\x00" * 4


def make_webp() -> bytes:
    vp8l = b"\x2f\x00\x00\x00\x00\x00\x00\x00"
    body = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def make_zip(entries: list[tuple[str, bytes]], *, stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


CONTENT_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
)
RELS = b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"/>'


def make_ooxml(part: str, *, first: list[tuple[str, bytes]] | None = None) -> bytes:
    return make_zip(
        [*(first or []), ("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS), (part, b"<x/>")]
    )


def make_odf(mime: str) -> bytes:
    return make_zip(
        [("mimetype", mime.encode()), ("content.xml", b"<office:document-content/>")], stored_first=True
    )


EML_BYTES = (
    b"Return-Path: <claims@client.example>\r\nReceived: from mx.client.example by mx.bpo.example\r\n"
    b"From: Claims <claims@client.example>\r\nTo: intake@bpo.example\r\n"
    b"Subject: Claim 4711\r\n =?utf-8?q?continued?=\r\nDate: Mon, 3 Mar 2025 10:00:00 +0100\r\n"
    b"Message-ID: <4711@client.example>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlease find the claim attached.\r\n"
)


@pytest.mark.parametrize(
    ("content", "mime"),
    [
        (make_png(), "image/png"),
        (make_pdf(), PDF),
        (make_jpeg(), "image/jpeg"),
        (make_gif(), "image/gif"),
        (make_tiff(), "image/tiff"),
        (make_webp(), "image/webp"),
        (make_ooxml("word/document.xml"), DOCX),
        (make_ooxml("xl/workbook.xml"), XLSX),
        (make_ooxml("ppt/presentation.xml"), PPTX),
        (make_odf(ODT), ODT),
        (make_odf(ODS), ODS),
        (EML_BYTES, EML),
    ],
    ids=["png", "pdf", "jpeg", "gif", "tiff", "webp", "docx", "xlsx", "pptx", "odt", "ods", "eml"],
)
def test_binary_formats_and_mail_are_told_from_their_bytes(content: bytes, mime: str) -> None:
    assert sniff(content[:HEAD_BYTES], None) == mime


def test_the_name_does_not_override_the_bytes() -> None:
    assert sniff(make_png(), "invoice.pdf") == "image/png"
    assert sniff(make_pdf(), "notes.txt") == PDF
    assert sniff(b"just some words\n", "photo.png") == TEXT
    assert sniff(make_ooxml("xl/workbook.xml"), "report.docx") == XLSX


def test_an_office_package_written_in_libreoffice_order_is_recognised() -> None:
    content = make_zip(
        [
            ("_rels/.rels", RELS),
            ("docProps/app.xml", b"<Properties/>"),
            ("docProps/core.xml", b"<coreProperties/>"),
            ("word/_rels/document.xml.rels", RELS),
            ("word/document.xml", b"<w:document/>"),
            ("[Content_Types].xml", CONTENT_TYPES),
        ]
    )
    assert sniff(content, "letter.docx") == DOCX


def test_an_office_package_whose_parts_come_after_other_entries_is_recognised() -> None:
    # customXml first is not among filetype's markers: our own scan of the head finds the part.
    content = make_ooxml("word/document.xml", first=[("customXml/item1.xml", b"<item/>" * 50)])
    assert sniff(content, None) == DOCX


def test_a_plain_zip_is_a_zip_and_not_accepted() -> None:
    content = make_zip([("notes.txt", b"not an office document"), ("word/data.bin", b"\x01\x02")])
    assert sniff(content, "archive.docx") == ZIP
    assert not accepts(DEFAULT_ACCEPTED_TYPES, ZIP)


def test_csv_is_text_named_csv() -> None:
    content = b"external_ref,title\nA-1,First claim\nA-2,Second claim\n"
    assert sniff(content, "Claims.CSV") == CSV
    assert sniff(content, None) == TEXT


def test_json_is_told_by_its_opening_bracket_or_by_parsing_when_named_json() -> None:
    assert sniff(json.dumps({"claims": [1, 2]}).encode(), None) == JSON
    assert sniff(b'  [{"a": 1}]', "data.txt") == JSON
    assert sniff(b'"a lone string"', "value.json") == JSON
    assert sniff(b"not json at all", "value.json") == TEXT


def test_xml_is_told_by_its_declaration() -> None:
    assert sniff(b'<?xml version="1.0" encoding="UTF-8"?>\n<claims/>', None) == XML
    assert sniff(b"\xef\xbb\xbf<?xml version='1.0'?><a/>", "a.txt") == XML
    assert sniff(b"<claims><claim/></claims>", "export.xml") == XML


def test_html_is_told_apart_from_plain_text_and_not_accepted() -> None:
    mime = sniff(b"<!DOCTYPE html>\n<html><script>alert(1)</script></html>", "notes.txt")
    assert mime == HTML
    assert not accepts(DEFAULT_ACCEPTED_TYPES, mime)


def test_a_note_with_one_header_like_line_is_not_mail() -> None:
    assert sniff(b"To: the team\nPlease review.\n", None) == TEXT
    assert sniff(b"To: intake@bpo.example\nSubject: hello\n\nbody\n", None) == EML
    assert sniff(b"Subject: hello\n\nbody\n", "message.eml") == EML


def test_utf8_text_cut_inside_a_character_by_the_head_is_still_text() -> None:
    content = ("é" * HEAD_BYTES).encode()
    assert sniff(content[: HEAD_BYTES - 1], None) == TEXT


@pytest.mark.parametrize(
    "content",
    [
        random.Random(7).randbytes(4096),
        "Grüße aus München".encode("utf-16"),
        b"text with a \x00 NUL",
        b"",
    ],
    ids=["random", "utf-16", "nul", "empty"],
)
def test_what_is_neither_a_known_format_nor_utf8_text_is_an_octet_stream(content: bytes) -> None:
    assert sniff(content, "looks.txt") == OCTET_STREAM


def test_every_sample_type_is_accepted_by_default() -> None:
    samples = [make_png(), make_pdf(), make_jpeg(), make_ooxml("xl/workbook.xml"), make_odf(ODT), EML_BYTES]
    assert all(accepts(DEFAULT_ACCEPTED_TYPES, sniff(sample, None)) for sample in samples)
    assert not accepts(DEFAULT_ACCEPTED_TYPES, OCTET_STREAM)


def test_accepts_wildcards_and_ignores_case_and_parameters() -> None:
    assert accepts(["image/*"], "image/png")
    assert not accepts(["image/*"], "application/pdf")
    assert accepts(["*/*"], OCTET_STREAM)
    assert accepts(["Text/CSV"], "text/csv; charset=utf-8")
    assert not accepts([], "text/plain")
    assert not accepts(["image/*"], "imagex/png")
