"""The one Settings object: environment (prefix SPEAKER_MEMORY_), then CLI flags override.

Built once at the edge (server/cli.py) and passed in; nothing else reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from inference.config import LIVE_PARALLEL_PASSES
from memory.pg import is_postgresql
from memory.types import MatchConfig


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPEAKER_MEMORY_", extra="ignore")

    # ---- storage
    data_dir: Path = Field(Path("./data"), description="Where the database, inbox and caches live.")
    database_url: str | None = Field(
        None,
        description="A shared PostgreSQL (with pgvector) store instead of the SQLite file in "
        "the data directory: postgresql+psycopg://user:password@host/database.",
    )

    audio_store_dir: Path | None = Field(
        None, description="The shared audio store: where uploads, copies of audio given by "
        "path and live recordings are kept, and where workers read them. With the procrastinate "
        "job queue, a folder every API server and worker mounts at the same path (a network "
        "volume). Default: DATA_DIR/audio.",
    )

    # ---- processing jobs
    job_queue: Literal["local", "procrastinate"] = Field(
        "local", description="Where processing jobs run: 'local', a thread pool inside this "
        "server (PROCESSING_WORKERS of them); or 'procrastinate', a queue in the PostgreSQL of "
        "DATABASE_URL that `speaker-memory worker` processes take jobs from, on any machine.",
    )
    job_queue_name: str = Field(
        "processing", min_length=1, max_length=64,
        description="The procrastinate queue API servers put processing jobs on, and workers "
        "take them from unless `worker --queue` names others (e.g. 'gpu' for GPU workers only).",
    )
    worker_heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often a worker tells the database it is alive.",
    )
    worker_stalled_seconds: float = Field(
        30.0, gt=0, description="A job whose worker has sent no heartbeat for this long (it "
        "died, or lost its machine) is run again by another worker.",
    )
    finished_job_hours: int = Field(
        24, ge=0, description="How long a finished job stays in the procrastinate queue's "
        "tables; workers then delete it (the conversation keeps its status and segments).",
    )

    # ---- models
    whisper_model: str = Field(
        "tiny.en",
        description="'tiny.en' and 'base' are bundled; any faster-whisper size name or local "
        "CTranslate2 folder works when you have it.",
    )
    language: str | None = Field(None, description="Force a transcription language (ISO code).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field(
        "auto", description="CTranslate2 compute type; auto = int8 on CPU, float16 on CUDA."
    )
    cpu_threads: int = Field(
        0, ge=0, description="Whisper's CPU threads (0: CTranslate2's default). With several "
        "workers on one machine, give each its share of the cores.",
    )
    torch_threads: int = Field(
        0, ge=0, description="CPU threads of the models beside Whisper, which run at the same "
        "time (0: half the cores).",
    )
    diarizer: Literal["neural", "builtin", "pyannote"] = "neural"
    voice_embedder: Literal["campplus", "resemblyzer", "pyannote"] = "campplus"
    emotion: bool = Field(False, description="Run emotion recognition (needs the 'emotion' extra).")
    hf_token: str | None = Field(
        None, validation_alias=AliasChoices("SPEAKER_MEMORY_HF_TOKEN", "HF_TOKEN"),
        description="Hugging Face token for the optional pyannote pipeline.",
    )
    model_cache_dir: Path | None = Field(None, description="Default: DATA_DIR/models.")
    weights_dir: Path | None = Field(
        None, description="Segmentation and CAM++ model files, installed by scripts/setup.sh. "
        "Default: the installation's share/speaker-memory/models.",
    )

    # ---- matching
    match_threshold: float | None = None
    match_margin: float | None = None
    propagate_threshold: float | None = None
    suggest_threshold: float | None = None

    # ---- limits
    max_audio_seconds: float = Field(4 * 3600, description="Longer audio is refused.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, description="Cap on uploads and base64 audio.")
    keep_failed_audio: bool = Field(
        False, description="Keep the server's copy of an uploaded (or base64) recording whose "
        "processing failed. Default: it is deleted (sending the same audio again retries). A "
        "file given by path is never deleted.",
    )
    wait_seconds: float = Field(
        600, description="process_audio(wait=true) returns a queued job after this long."
    )

    # ---- live listening
    live_whisper_model: str = Field(
        "tiny.en", description="Model of live sessions (each pass re-reads the last seconds: a "
        "small model keeps up in real time on a CPU). Finalising uses WHISPER_MODEL.",
    )
    live_max_latency_seconds: float = Field(
        4.0, gt=0, description="A live word is confirmed at the latest this long after it was "
        "heard, even while Whisper's passes still disagree on it.",
    )
    live_vad_threshold: float = Field(
        0.5, gt=0, lt=1, description="Live audio with no speech at this silero VAD threshold "
        "is recorded but not transcribed.",
    )
    live_max_seconds: float = Field(
        2 * 3600, gt=0, description="A live session stops taking audio after this long "
        "(its recording is kept and finalised).",
    )
    live_max_sessions: int = Field(
        4, ge=1, description="Live sessions at once (WebSocket streams and the microphone); "
        "one more is refused with a message saying so.",
    )
    live_parallel_passes: int = Field(
        LIVE_PARALLEL_PASSES, ge=1, description="Live sessions transcribed at once, each on "
        "its own Whisper worker (more sessions take turns); about the number of CPU cores.",
    )
    live_max_behind_seconds: float = Field(
        10.0, gt=0, description="Audio waiting to be transcribed before a live client is told "
        "to slow down (a WebSocket stops being read until it catches up).",
    )

    # ---- server
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = Field(
        None, description="Bearer token required on every HTTP route when set."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Host header values accepted (DNS-rebinding guard), comma-separated.",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Web page origins besides this server's own that may call it "
        "(e.g. 'https://notes.example.com'), comma-separated. CORS stays closed.",
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Where tool 'path' arguments may point, comma-separated. "
        "Default: DATA_DIR/inbox and the start directory.",
    )
    log_level: str = "INFO"
    processing_workers: int = Field(
        1, ge=1, description="Audio files processed at once (each holds the CPU; reads never wait)."
    )
    event_store_max_events: int = Field(
        10_000, ge=1, description="Streamable HTTP events kept for resuming dropped streams "
        "(Last-Event-ID); the oldest go first.",
    )
    event_store_max_age_seconds: float = Field(
        24 * 3600, gt=0, description="Streamable HTTP events older than this are dropped: a "
        "client that reconnects later re-reads the result with get_processing_status.",
    )
    header_timeout_seconds: float = Field(
        30, gt=0, description="An HTTP connection that has not sent a request's headers within "
        "this long is closed (idle and half-open connections would otherwise be held for ever).",
    )
    session_idle_seconds: float = Field(
        30 * 60, gt=0, description="An MCP HTTP session with no request for this long is "
        "closed; its client starts a new one.",
    )
    conformance_tools: bool = Field(
        False, description="Adds test_reconnection, the tool the official MCP conformance suite "
        "calls to check that a dropped stream resumes. For testing only.",
    )

    @field_validator("allowed_hosts", "allowed_origins", "allowed_roots", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        # Env values are plain text: accept "a,b" as well as a JSON list.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _queue_needs_postgresql(self) -> Settings:
        if self.job_queue == "procrastinate" and not (
                self.database_url and is_postgresql(self.database_url)):
            raise ValueError(
                "SPEAKER_MEMORY_JOB_QUEUE=procrastinate keeps its queue in the shared "
                "PostgreSQL store: set SPEAKER_MEMORY_DATABASE_URL=postgresql+psycopg://... too "
                "(or use the default JOB_QUEUE=local with the embedded store)")
        return self

    @property
    def db_path(self) -> Path:
        return self.data_dir / "speaker_memory.db"

    @property
    def event_store_path(self) -> Path:
        """Resumable-stream events: their own small SQLite file (not the memory's schema)."""
        return self.data_dir / "mcp_events.db"

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def audio_dir(self) -> Path:
        return self.audio_store_dir or self.data_dir / "audio"

    @property
    def live_audio_dir(self) -> Path:
        """Recordings of live sessions."""
        return self.audio_dir / "live"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def match_config(self) -> MatchConfig:
        return MatchConfig(
            threshold=self.match_threshold,
            margin=self.match_margin,
            propagate_threshold=self.propagate_threshold,
            suggest_threshold=self.suggest_threshold,
        )
