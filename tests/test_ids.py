"""Result IDs: what names a result, and that no ID reaches outside the store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resultsfs import InvalidResultIdError, ResultStore, ids
from strategies import invalid_ids, result_ids


class TestValidIds:
    def test_string_and_list_forms_name_the_same_path(self) -> None:
        assert ids.id_to_relpath("a/b/c") == ids.id_to_relpath(["a", "b", "c"]) == "a/b/c.json"

    def test_tuple_is_accepted(self) -> None:
        assert ids.normalize_id(("sweep3", "lr0.1", "seed7")) == "sweep3/lr0.1/seed7"

    def test_dots_inside_parts_are_fine(self) -> None:
        assert ids.normalize_id("sweep3/lr0.1/v1.2.json") == "sweep3/lr0.1/v1.2.json"

    def test_longest_part_fits_the_name_limit(self, tmp_path: Path) -> None:
        part = "x" * ids.MAX_PART_BYTES
        (tmp_path / (part + ".json")).write_text("{}")  # the filesystem accepts it

    def test_non_ascii_parts_are_fine(self) -> None:
        assert ids.normalize_id(["résumé", "数据"]) == "résumé/数据"


class TestInvalidIds:
    @pytest.mark.parametrize(
        ("bad", "reason"),
        [
            ("", "empty ID"),
            ([], "empty ID"),
            ("a//b", "empty part"),
            (["a", "", "b"], "empty part"),
            ("/etc/passwd", "absolute"),
            ("..", "not allowed"),
            ("a/../../b", "not allowed"),
            (".", "not allowed"),
            (".secret", "reserved"),
            ("a/.resultsfs", "reserved"),
            ("a\x00b", "'\\x00'"),
            ("a\nb", "'\\n'"),
            (["a/b"], "'/'"),
            ("x" * 300, "over the limit"),
            ("d.json/x", "ends in '.json'"),
            ("bad\udcff", "not valid text"),
            (b"bytes", "not a string"),
            (42, "a string or a list"),
            ("c1\x85next-line", "control character U+0085"),
            ("csi\x9b2J", "control character U+009B"),
            ("two\u2028lines", "line separator character U+2028"),
            ("para\u2029graph", "paragraph separator character U+2029"),
            ("evil\u202egnp.json", "invisible format character U+202E (RIGHT-TO-LEFT OVERRIDE)"),
            ("left\u2066isolate", "U+2066"),
            ("zero\u200bwidth", "U+200B"),
            ("\ufeffbom", "U+FEFF"),
            ("cafe\u0301", "not in Unicode NFC form ('cafe\\u0301'); write it as 'caf\xe9'"),
        ],
    )
    def test_rejected_with_reason(self, bad: object, reason: str) -> None:
        with pytest.raises(InvalidResultIdError, match=re.escape(reason)) as info:
            ids.normalize_id(bad)  # type: ignore[arg-type]
        assert isinstance(info.value, ValueError)

    def test_nfc_and_ordinary_non_ascii_text_are_fine(self) -> None:
        assert ids.normalize_id(["caf\xe9", "\u05e2\u05d1\u05e8\u05d9\u05ea", "emoji\U0001f600"]) == (
            "caf\xe9/\u05e2\u05d1\u05e8\u05d9\u05ea/emoji\U0001f600"
        )

    def test_too_deep(self) -> None:
        with pytest.raises(InvalidResultIdError, match="parts"):
            ids.normalize_id(["a"] * (ids.MAX_DEPTH + 1))

    @given(invalid_ids)
    def test_generated_invalid_ids_are_rejected(self, bad: str) -> None:
        with pytest.raises(InvalidResultIdError):
            ids.normalize_id(bad)

    def test_store_api_rejects_before_touching_disk(self, store: ResultStore, metrics: object) -> None:
        before = sorted(os.listdir(store.backend.base_dir))
        for bad in ("../escape", "/tmp/x", "a//b", ".resultsfs/locks/x"):
            with pytest.raises(InvalidResultIdError):
                store.set(bad, metrics)  # type: ignore[arg-type]
            with pytest.raises(InvalidResultIdError):
                store.get(bad)
            with pytest.raises(InvalidResultIdError):
                store.delete(bad)
        assert sorted(os.listdir(store.backend.base_dir)) == before
        assert not (store.backend.base_dir.parent / "escape.json").exists()


class TestRoundTrip:
    @given(result_ids())
    def test_every_valid_id_maps_inside_the_store_and_back(self, rid: str) -> None:
        base = Path("/store")
        rel = ids.id_to_relpath(rid)
        path = Path(os.path.normpath(base / rel))
        assert path.is_relative_to(base) and path != base
        assert path.name.endswith(".json")
        parts = path.relative_to(base).parts
        back = [*parts[:-1], ids.result_name_to_part(parts[-1])]
        assert "/".join(back) == rid  # type: ignore[arg-type]

    @given(result_ids())
    def test_list_form_equals_string_form(self, rid: str) -> None:
        assert ids.normalize_id(rid.split("/")) == rid


class TestResultNames:
    @pytest.mark.parametrize(
        ("name", "part"),
        [
            ("seed7.json", "seed7"),
            ("a.json.json", "a.json"),
            (".x.json", None),
            ("x.json.tmp", None),
            ("x.json~", None),
            ("4913", None),
            (".x.json.swp", None),
            ("sedAbC123", None),
            (".resultsfs-tmp.h.1.ab", None),
            (".json", None),
        ],
    )
    def test_which_names_are_results(self, name: str, part: str | None) -> None:
        assert ids.result_name_to_part(name) == part


@given(st.text(max_size=300) | st.from_regex(r"[ -~]{0,260}(\.json)?", fullmatch=True))
def test_the_fast_path_for_plain_names_agrees_with_the_full_check(name: str) -> None:
    """Listing checks every entry through a short path for plain ASCII names; it must say what
    the full check says, for every name."""
    stem = name[: -len(ids.SUFFIX)] if name.endswith(ids.SUFFIX) else None
    expected = stem if stem is not None and ids.part_problem(stem, is_last=True) is None else None
    assert ids.result_name_to_part(name) == expected
    for is_last in (True, False):
        assert ids.is_valid_part(name, is_last=is_last) == (ids.part_problem(name, is_last=is_last) is None)
