"""Reading the text files that topics, qrels and corpora come in.

Research collections arrive gzipped or plain, with a byte-order mark now and
then, with stray bytes that are not UTF-8, and with mojibake (UTF-8 that was
once decoded as Latin-1 or Windows-1252, so that "café" reads "cafÃ©"). The
readers here never crash on bad bytes: each invalid UTF-8 sequence becomes
U+FFFD and is counted, and the count is logged once per file.
"""

from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = _REPLACEMENT.encode("utf-8")
_BYTE_ORDER_MARK = "\ufeff".encode("utf-8")

try:
    import ftfy
except ImportError:  # optional: without it, mojibake is kept as it is
    ftfy = None
_warned_no_ftfy = False


class TextFileError(ValueError):
    """A malformed line or record of an input file; the message names the file and line."""


def check_file(path: str | os.PathLike) -> Path:
    """Return `path` as a Path, raising FileNotFoundError that names it when it is not a file."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise FileNotFoundError(f"{path} is not a file (a directory?); pass the file itself")
        raise FileNotFoundError(f"file not found: {path}")
    return path


def _open_binary(path: Path):
    # Check the magic bytes instead of the suffix, because a gzipped file may
    # lack `.gz` and a decompressed one may keep it.
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == _GZIP_MAGIC else open(path, "rb")


def _decode(raw: bytes) -> tuple[str, int]:
    """Decode UTF-8, replacing each invalid sequence with U+FFFD; return the text and the count."""
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        # U+FFFD that was already in the file is not an invalid sequence.
        return text, text.count(_REPLACEMENT) - raw.count(_REPLACEMENT_BYTES)


def _log_invalid(path: Path, invalid: int, lines: int) -> None:
    if invalid:
        logger.warning(
            "%s: replaced %d invalid UTF-8 byte sequences with U+FFFD on %d lines",
            path, invalid, lines,
        )


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` from a plain or gzipped UTF-8 file, line endings stripped.

    Line numbers start at 1 and count blank lines, so that they match an editor.
    A leading byte-order mark is dropped.
    """
    path = check_file(path)
    invalid = 0
    bad_lines = 0
    try:
        with _open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                line, count = _decode(raw)
                if count:
                    invalid += count
                    bad_lines += 1
                if line_number == 1:
                    line = line.removeprefix("\ufeff")
                yield line_number, line.rstrip("\r\n")
    except (OSError, EOFError) as error:
        # A truncated or corrupt gzip stream surfaces here, mid-iteration.
        raise TextFileError(f"{path}: failed to read the file ({error})") from None
    finally:
        _log_invalid(path, invalid, bad_lines)


def read_text(path: str | os.PathLike) -> str:
    """Return the whole decoded text of a plain or gzipped UTF-8 file."""
    path = check_file(path)
    try:
        with _open_binary(path) as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise TextFileError(f"{path}: failed to read the file ({error})") from None
    text, invalid = _decode(raw)
    _log_invalid(path, invalid, text.count("\n") + 1 if invalid else 0)
    return text.removeprefix("\ufeff")


def first_character(path: str | os.PathLike) -> str:
    """Return the first non-whitespace character of a file, or "" for an empty file.

    Readers use it to detect JSON (`[`), JSONL (`{`) and line formats from the
    content instead of the file suffix. Only the bytes up to that character
    are read, and nothing is logged, because the caller reads the file again.
    """
    path = check_file(path)
    try:
        with _open_binary(path) as handle:
            head = handle.read(len(_BYTE_ORDER_MARK))
            if head != _BYTE_ORDER_MARK:
                head = head.lstrip()
                if head:
                    return head[:1].decode("utf-8", errors="replace")
            while chunk := handle.read(4096):
                chunk = chunk.lstrip()
                if chunk:
                    return chunk[:1].decode("utf-8", errors="replace")
    except (OSError, EOFError) as error:
        raise TextFileError(f"{path}: failed to read the file ({error})") from None
    return ""


def repair_mojibake(text: str) -> str:
    """Return `text` with mojibake undone, when ftfy judges it to be mojibake.

    Only the encoding repair of ftfy runs (`ftfy.fix_encoding`), so quotes,
    HTML entities, line breaks and Unicode normalisation are left alone.
    Without ftfy installed the text is returned as it is, with one warning per
    process.
    """
    global _warned_no_ftfy
    if ftfy is None:
        if not _warned_no_ftfy:
            logger.warning("ftfy is not installed, so mojibake is not repaired; pip install ftfy")
            _warned_no_ftfy = True
        return text
    # Plain ASCII cannot be mojibake, and checking is far cheaper than ftfy.
    if text.isascii():
        return text
    # NOTE: ftfy's heuristics also rewrite a few rare correct sequences, such
    # as "Ã" followed by a space, which it reads as a broken "à".
    return ftfy.fix_encoding(text)


@dataclass
class HygieneCounts:
    """Counts of repaired and empty texts for one input file, logged once at its end."""

    path: Path
    repair: bool = True
    mojibake: int = 0
    empty: int = 0

    def clean(self, text: str | None) -> str:
        """Return the text with mojibake repaired when `repair` is set (None becomes ""), counting repairs."""
        if text is None:
            return ""
        if not self.repair:
            return text
        repaired = repair_mojibake(text)
        if repaired != text:
            self.mojibake += 1
        return repaired

    def log(self, kind: str) -> None:
        if self.mojibake:
            logger.info("%s: repaired mojibake in %d %s", self.path, self.mojibake, kind)
        if self.empty:
            logger.warning("%s: %d %s are empty", self.path, self.empty, kind)
