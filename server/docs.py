"""Generated documentation: the README's environment-variable table comes from Settings.

    .venv/bin/python -m server.docs    # prints the table to paste into README.md

tests/server/test_server_docs.py fails when the README and Settings disagree.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined

from tools.settings import Settings

EXTRA_DESCRIPTIONS = {
    "device": "auto, cpu or cuda.",
    "diarizer": "neural (segmentation-3.0 regions + CAM++ windows, bundled), builtin (VAD "
    "regions + windows, GE2E era) or pyannote (needs the extra and HF_TOKEN).",
    "voice_embedder": "campplus (CAM++, bundled), resemblyzer (GE2E, bundled) or pyannote.",
    "match_threshold": "Cosine score at which a voice joins a stored speaker "
    "(unset: the voice model's measured value).",
    "match_margin": "...and by which it must beat the runner-up (unset: the model's value).",
    "propagate_threshold": "After naming a voice, unknown speakers this close are merged in "
    "(unset: the model's value).",
    "suggest_threshold": "Weaker matches are returned as suggestions to confirm "
    "(unset: the model's value).",
    "host": "HTTP address (serve). Non-loopback needs a token.",
    "port": "HTTP port (serve).",
    "log_level": "DEBUG, INFO, WARNING or ERROR (logs go to stderr).",
}


def env_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name, field in Settings.model_fields.items():
        env = f"SPEAKER_MEMORY_{name.upper()}"
        default = _default(field.default, field.default_factory)
        description = (field.description or EXTRA_DESCRIPTIONS.get(name, "")).replace("|", "/")
        rows.append((env, default, description))
    return rows


def env_table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{env}` | {default} | {text} |" for env, default, text in env_rows()]
    return "\n".join(lines)


def _default(value: Any, factory: Any) -> str:
    if factory is not None:
        value = factory()
    if value is PydanticUndefined or value is None or value == []:
        return "—"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


if __name__ == "__main__":
    print(env_table())
