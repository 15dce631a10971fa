"""Result IDs and the relative paths that store them; the only place that validates IDs.

A result ID is a ``/``-joined string (``"sweep3/lr0.1/seed7"``) or a sequence of parts
(``["sweep3", "lr0.1", "seed7"]``). Result ``a/b/c`` is stored at ``a/b/c.json`` under the
store. The rules below make every valid ID name exactly one path inside the store, so that no
ID can reach outside it and no two IDs share a file:

* no empty ID, no empty part (``"a//b"`` is an error, not an alias of ``"a/b"``);
* no ``.``/``..``, no absolute path, no part starting with ``.`` (the store's own files,
  temp files and lock records all start with ``.``);
* no NUL, ``/`` inside a part, or other control character, C1 controls included (a newline
  breaks every line-based tool that lists IDs; ``\x85`` and ``\x9b`` are line and escape
  controls to some terminals);
* no line or paragraph separator (U+2028, U+2029), and no invisible format character: bidi
  overrides and isolates (which make ``ls`` show names in another order than they have),
  zero-width characters, the byte order mark, the soft hyphen (Unicode category Cf);
* one spelling per name: a part must be in Unicode normalization form NFC, so ``café`` typed
  on Linux (NFC) and copied from macOS (NFD) cannot become two results that look alike; the
  error gives the NFC spelling;
* text only: a part must encode to UTF-8 (lone surrogates, i.e. undecodable file names,
  are refused);
* a directory part may not end in ``.json`` (it would collide with the file of a result);
* a part is at most :data:`MAX_PART_BYTES` bytes in UTF-8, so ``part.json`` fits the
  255-byte name limit of common filesystems.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from resultsfs.errors import InvalidResultIdError

#: What callers may pass as a result ID: ``"sweep3/lr0.1/seed7"``, or its parts
#: ``["sweep3", "lr0.1", "seed7"]``.
ResultId = str | Sequence[str]

#: The suffix of a result's file.
SUFFIX = ".json"

#: The usual NAME_MAX (ext4, xfs, btrfs, tmpfs) less the length of :data:`SUFFIX`.
MAX_PART_BYTES = 255 - len(SUFFIX)

#: Parts nested deeper than this are refused (PATH_MAX is 4096; this keeps well inside it).
MAX_DEPTH = 64

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/]")

#: A part made of printable ASCII (no ``/``), not starting with ``.``, at most
#: :data:`MAX_PART_BYTES` long: valid by construction. Listing a store of 100,000 results
#: checks every name; this is the fast path for the usual ones.
_PLAIN_PART = r"[ -\-0-~][ -.0-~]{0," + str(MAX_PART_BYTES - 1) + "}"
PLAIN_RESULT_NAME = re.compile(f"({_PLAIN_PART})\\.json")
_PLAIN_DIR_NAME = re.compile(_PLAIN_PART)

#: Unicode categories no name may contain: controls (C0 and C1), format characters (bidi
#: controls, zero-width characters, the byte order mark), line and paragraph separators, and
#: surrogates (undecodable bytes).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def unusable_character(name: str) -> str | None:
    """Why ``name`` cannot name anything (a character it may not hold, or not NFC); ``None`` if it can."""
    for char in name:
        if ord(char) < 0x80 and not (char < " " or char == "\x7f"):
            continue
        category = unicodedata.category(char)
        if category in _FORBIDDEN_CATEGORIES:
            what = {
                "Cc": "control",
                "Cf": "invisible format",
                "Zl": "line separator",
                "Zp": "paragraph separator",
            }
            kind = what.get(category, "undecodable")
            return f"it contains the {kind} character U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"
    if not name.isascii() and not unicodedata.is_normalized("NFC", name):
        nfc = unicodedata.normalize("NFC", name)
        return f"it is not in Unicode NFC form ({name!a}); write it as {nfc!r}, that is {nfc!a}"
    return None


def _fail(shown: object, reason: str) -> InvalidResultIdError:
    return InvalidResultIdError(f"invalid result ID {shown!r}: {reason}", result_id=str(shown))


def part_problem(part: object, *, is_last: bool) -> str | None:
    """Why ``part`` cannot be one part of an ID (as a message), or ``None`` if it can.

    Listing a store asks this for every entry, so the usual case (ASCII) takes a short path:
    ASCII text is always in NFC, and its only forbidden characters are those of ``_FORBIDDEN``.
    """
    if not isinstance(part, str):
        return f"part {part!r} is not a string"
    if part == "":
        return "empty part (IDs have no empty parts and no '//')"
    if part in (".", ".."):
        return f"part {part!r} is not allowed"
    if part.startswith("."):
        return f"part {part!r} starts with '.', which is reserved for the store"
    bad = _FORBIDDEN.search(part)
    if bad:
        return f"part {part!r} contains the character {bad.group()!r}"
    if part.isascii():
        size = len(part)
    else:
        try:
            size = len(part.encode("utf-8"))
        except UnicodeEncodeError:
            return f"part {part!r} is not valid text (undecodable bytes)"
        unusable = unusable_character(part)
        if unusable is not None:
            return f"part {part!r}: {unusable}"
    if size > MAX_PART_BYTES:
        return f"part is {size} bytes long, over the limit of {MAX_PART_BYTES}"
    if not is_last and part.endswith(SUFFIX):
        return f"directory part {part!r} ends in {SUFFIX!r}"
    return None


def check_part(part: str, *, is_last: bool, shown: object) -> None:
    """Raise :class:`InvalidResultIdError` unless ``part`` may be one part of an ID."""
    problem = part_problem(part, is_last=is_last)
    if problem is not None:
        raise _fail(shown, problem)


def id_parts(result_id: ResultId) -> tuple[str, ...]:
    """Return the validated parts of ``result_id``."""
    if isinstance(result_id, str):
        if result_id.startswith("/"):
            raise _fail(result_id, "absolute paths are not IDs")
        parts: tuple[str, ...] = tuple(result_id.split("/"))
    elif isinstance(result_id, Sequence):
        parts = tuple(result_id)
    else:
        raise _fail(result_id, f"an ID is a string or a list of strings, not {type(result_id)}")
    if not parts or parts == ("",):
        raise _fail(result_id, "empty ID")
    if len(parts) > MAX_DEPTH:
        raise _fail(result_id, f"{len(parts)} parts, over the limit of {MAX_DEPTH}")
    last = len(parts) - 1
    for index, part in enumerate(parts):
        check_part(part, is_last=index == last, shown=result_id)
    return parts


def normalize_id(result_id: ResultId) -> str:
    """Return the canonical ``/``-joined form of ``result_id``."""
    return "/".join(id_parts(result_id))


def id_to_relpath(result_id: ResultId) -> str:
    """``"a/b/c"`` -> ``"a/b/c.json"``, relative to the store."""
    return normalize_id(result_id) + SUFFIX


def suffix_hint(result_id: str) -> str:
    """``; did you mean 'eval/z'? ...`` for ``eval/z.json`` (an ID typed as its file name), else ``""``."""
    if result_id.endswith(SUFFIX) and len(result_id) > len(SUFFIX):
        return f"; did you mean {result_id[: -len(SUFFIX)]!r}? (an ID has no {SUFFIX} suffix)"
    return ""


def result_name_to_part(name: str) -> str | None:
    """The ID part named by a directory entry, or ``None`` if the entry is not a result.

    ``"seed7.json"`` -> ``"seed7"``; ``".x.json"``, ``"x.json.tmp"``, ``"x.json~"`` -> ``None``.
    """
    plain = PLAIN_RESULT_NAME.fullmatch(name)
    if plain is not None:
        return plain.group(1)
    if not name.endswith(SUFFIX):
        return None
    part = name[: -len(SUFFIX)]
    if not is_valid_part(part, is_last=True):
        return None
    return part


def is_valid_part(part: str, *, is_last: bool) -> bool:
    """True if ``part`` passes :func:`check_part`."""
    if _PLAIN_DIR_NAME.fullmatch(part) is not None and (is_last or not part.endswith(SUFFIX)):
        return True
    return part_problem(part, is_last=is_last) is None
