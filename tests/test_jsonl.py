import gzip

import pytest

from diver.errors import InputError
from diver.text.jsonl import read_jsonl


def test_read_jsonl_numbers_lines_and_skips_blanks(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2]\n', encoding="utf-8")
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (4, [2])]


def test_read_jsonl_reads_gzip(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write('{"q": "x"}\n')
    assert list(read_jsonl(path)) == [(1, {"q": "x"})]


def test_read_jsonl_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows.jsonl:2: invalid JSON \(Expecting value\)"):
        list(read_jsonl(path))
    with pytest.raises(InputError, match=r":2: not valid JSON"):
        list(read_jsonl(path, invalid="not valid JSON"))


def test_read_jsonl_line_size_limit(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": "' + "x" * 100 + '"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r":2: line is over the limit of 50 bytes"):
        list(read_jsonl(path, max_line_bytes=50))
