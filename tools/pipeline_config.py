"""Settings → the audio pipeline: inference defines its own plain config; tools converts."""

from __future__ import annotations

from inference.config import PipelineConfig
from tools.context import PipelineLike
from tools.settings import Settings


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig.from_settings(settings)


def build_pipeline(settings: Settings) -> PipelineLike:
    """The real pipeline (models load lazily inside it, on first use)."""
    from inference.pipeline import shared_pipeline  # torch & co: imported only when needed

    return shared_pipeline(pipeline_config(settings))
