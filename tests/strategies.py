"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import unicodedata

from hypothesis import strategies as st

from resultsfs.ids import MAX_PART_BYTES

# Printable text without '/', controls, format characters or separators, not starting with '.',
# in NFC.
_part_chars = st.characters(
    blacklist_categories=("Cc", "Cs", "Cf", "Zl", "Zp"),
    blacklist_characters="/",
)


def _fits(part: str) -> bool:
    return len(part.encode("utf-8")) <= MAX_PART_BYTES


id_parts = st.text(_part_chars, min_size=1, max_size=40).filter(
    lambda p: not p.startswith(".") and _fits(p) and unicodedata.is_normalized("NFC", p)
)
dir_parts = id_parts.filter(lambda p: not p.endswith(".json"))


@st.composite
def result_ids(draw: st.DrawFn, max_depth: int = 4) -> str:
    """A valid result ID: directory parts, then a last part."""
    dirs = draw(st.lists(dir_parts, max_size=max_depth - 1))
    return "/".join([*dirs, draw(id_parts)])


#: Strings that are never valid IDs, with the reason.
invalid_ids = st.one_of(
    st.just(""),
    st.just("/abs"),
    st.just("a//b"),
    st.just("a/"),
    st.just("."),
    st.just(".."),
    st.just("a/../b"),
    st.just("a/./b"),
    st.just(".hidden"),
    st.just("a/.resultsfs/x"),
    st.builds(lambda p: p + "\x00", id_parts),
    st.builds(lambda p: p + "\n" + p, id_parts),
    st.just("x" * (MAX_PART_BYTES + 1)),
    st.just("dir.json/x"),
    st.just("bad\udcff"),
    st.just("c1\x85control"),
    st.just("csi\x9b"),
    st.just("line\u2028separator"),
    st.just("para\u2029separator"),
    st.just("rtl\u202eoverride"),
    st.just("isolate\u2066x"),
    st.just("zero\u200bwidth"),
    st.just("\ufeffbom"),
    st.just("cafe\u0301"),
)
