"""Just enough PNG to find the text chunks a character card hides in.

Cards are PNG images whose ``tEXt`` chunk ``chara`` (V2) or ``ccv3`` (V3)
holds base64 JSON. Reading them needs no image library: a PNG is an
8-byte signature and then chunks of (length, type, data, CRC). ``zTXt`` and
``iTXt`` are read too; decompression is capped so a hostile file cannot
inflate into gigabytes.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT = 16 * 1024 * 1024  # decompressed bytes allowed per text chunk


class PngError(ValueError):
    """The data is not a readable PNG; the message says why, for people."""


def text_chunks(data: bytes) -> dict[str, str]:
    """The PNG's text chunks as ``{keyword (lower case): text}``; the first wins.

    Raises :class:`PngError` for a missing signature, a truncated file or a
    text chunk whose checksum or compression is broken.
    """
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG image (the PNG signature is missing)")
    texts: dict[str, str] = {}
    offset = len(SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise PngError("truncated PNG: the file ends before the IEND chunk")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 8 + length + 4
        if length > 0x7FFFFFFF or end > len(data):
            raise PngError(f"truncated PNG: the {kind.decode('latin-1')!r} chunk runs past the end")
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IEND":
            return texts
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            (crc,) = struct.unpack(">I", data[end - 4 : end])
            if zlib.crc32(kind + body) != crc:
                raise PngError(f"corrupt PNG: bad checksum in a {kind.decode()} chunk")
            keyword, text = _decode_text(kind, body)
            texts.setdefault(keyword.lower(), text)
        offset = end


def _decode_text(kind: bytes, body: bytes) -> tuple[str, str]:
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        raise PngError(f"corrupt PNG: a {kind.decode()} chunk has no keyword")
    name = keyword.decode("latin-1")
    if kind == b"tEXt":
        return name, rest.decode("latin-1")
    if kind == b"zTXt":
        return name, _inflate(rest[1:]).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        raise PngError("corrupt PNG: an iTXt chunk is too short")
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\0")
    _translated, _, rest = rest.partition(b"\0")
    raw = _inflate(rest) if compressed else rest
    try:
        return name, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PngError("corrupt PNG: an iTXt chunk is not UTF-8") from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT)
    except zlib.error as exc:
        raise PngError(f"corrupt PNG: a compressed text chunk is broken ({exc})") from exc
    if inflater.unconsumed_tail:
        raise PngError(f"a compressed text chunk inflates to more than {MAX_TEXT} bytes")
    return out


def chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk with its length and checksum."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def make_png(texts: dict[str, str]) -> bytes:
    """A 1×1 grey PNG carrying ``texts`` as ``tEXt`` chunks (Latin-1 keywords and text).

    Enough for a card that other tools accept; base64 payloads are ASCII.
    """
    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte + one pixel
    parts = [SIGNATURE, chunk(b"IHDR", header)]
    for keyword, text in texts.items():
        parts.append(chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1")))
    parts += [chunk(b"IDAT", pixels), chunk(b"IEND", b"")]
    return b"".join(parts)
