"""tests/data stays small enough for the repository, and says where every file comes from."""

from __future__ import annotations

from tests.testdata import DATA


def test_the_test_data_is_under_5_mb_and_each_file_has_its_source_noted() -> None:
    files = [p for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in files) < 5_000_000
    readme = (DATA / "README.md").read_text()
    # By name without suffixes: the README gives a recording and its references in one row.
    unnoted = sorted(str(p.relative_to(DATA)) for p in files
                     if p.name.split(".")[0] not in readme and p != DATA / "README.md")
    assert unnoted == []
