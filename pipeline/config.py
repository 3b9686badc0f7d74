"""The run configuration: one pydantic model that the CLI, YAML files and tests share."""

from __future__ import annotations

import difflib
import os
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.names import MODEL_NAMES, WEIGHTS_NAMES

from .formats.rasters import RasterOptions

MAX_BYTES = 2 * 1024**3  # a 2 GiB input: far above any photo, scan or slide tile a decode task holds
PIL_DEFAULT_MAX_PIXELS = 89_478_485
SCENE_PIXELS = 64 * 1024**2  # 8192 x 8192: see BENCHMARKS.md, tiles as rows


# export format -> whether a row needs a CRS and a geotransform to be exported in it
EXPORT_NEEDS_CRS = {"cog": True, "geoparquet": True, "stac": True, "dicom-seg": False, "hf": False, "coco": False}


def parse_formats(value: str | list[str]) -> list[str]:
    """``cog,stac`` or ``all`` (every format) -> the formats in ``EXPORT_NEEDS_CRS`` order; ``stac`` brings ``cog``
    (its asset).

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if "all" in names:
        names = list(EXPORT_NEEDS_CRS)
    unknown = sorted(set(names) - set(EXPORT_NEEDS_CRS))
    if unknown or not names:
        raise ValueError(
            f"unknown export format {', '.join(unknown) or '(none)'}: choose from {', '.join(EXPORT_NEEDS_CRS)} or all"
        )
    if "stac" in names:
        names.append("cog")
    return [f for f in EXPORT_NEEDS_CRS if f in names]


class ConfigError(ValueError):
    """Invalid configuration; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


RANDOM_WEIGHTS = (
    "--weights random: the model is untrained, so every mask is meaningless (typically one class everywhere, "
    "confidence 1/classes); pass a registered weights name or a checkpoint to get real masks"
)


def unknown_weights_name(weights: str) -> str | None:
    """Why ``weights`` is neither a registered name, ``random``, nor something that reads as a file, else ``None``.

    A bare word (no ``/``, no extension, no existing file) is a name: a typo of a registered one must
    not be taken for a path and fail later as a missing file.
    """
    names = WEIGHTS_NAMES
    if weights in (*names, "random") or "/" in weights or os.path.splitext(weights)[1] or os.path.exists(weights):
        return None
    close = difflib.get_close_matches(weights, [*names, "random"], n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"weights: {weights!r} is no registered name; {hint}registered: {', '.join(names)} (or a checkpoint path)"


class S3Settings(BaseModel):
    """How a job reaches S3 (``io.storage`` builds its clients from these): every job that reads or writes
    ``s3://`` has them, as flags and in its YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    s3_endpoint_url: str | None = Field(None, description="S3 endpoint; default $AWS_ENDPOINT_URL")
    s3_region: str | None = Field(None, description="S3 region; default $AWS_REGION / $AWS_DEFAULT_REGION")
    s3_anonymous: bool = Field(False, description="read S3 without credentials (public buckets)")
    s3_profile: str | None = Field(None, description="AWS profile name for S3 credentials")


class RaySettings(BaseModel):
    """Which Ray cluster a job joins, or how large a local one it starts (``cluster.init_ray``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ray_address: str | None = Field(
        None, description="Ray cluster to join; default $RAY_ADDRESS, else start a local one"
    )
    num_cpus: int | None = Field(
        None, gt=0, description="logical CPUs of a local Ray cluster; default this machine's cores + 1 (for I/O tasks)"
    )


class Shared(RaySettings, S3Settings):
    """Options every job that runs on Ray and writes an output has: the cluster, the lease, S3, logging."""

    lease_seconds: float = Field(
        120,
        ge=10,
        description="a run's lease on --output lives this long unless renewed (a killed run's, then taken over)",
    )
    verbose: bool = Field(False, description="show Ray's own log lines, warnings and per-stage progress here")


class RunConfig(Shared):
    """Everything a segmentation run needs; each field is also a ``--flag`` of ``jobs.segment``."""

    input: str = Field(
        description="images to segment: a folder or S3 prefix, Parquet file(s), or a URI list (one URI per line: "
        ".txt/.lst, or a uri column: .csv)"
    )
    output: str = Field(description="folder or S3 prefix for masks/, class_stats/ and _manifest.json")
    input_format: Literal["auto", "files", "parquet", "manifest"] = Field(
        "auto",
        description="how to read --input (manifest: a URI list); auto: by suffix (.parquet, .txt/.csv/.lst) "
        "else image files",
    )
    image_column: str = Field("image", description="Parquet column with image bytes or a {bytes, path} struct")
    id_column: str | None = Field(None, description="Parquet column whose value becomes image_id")
    model: str = Field("fcn8s_mobilenet_v3", description=f"model name, one of {', '.join(MODEL_NAMES)}")
    weights: str | None = Field(
        None,
        description=f"registered weights name ({', '.join(WEIGHTS_NAMES)}), checkpoint URI (a path, "
        "file:// or s3://), or 'random' (untrained: the masks mean nothing; explicit only)",
    )
    classes: list[str] | None = Field(
        None, description="class names for a plain state dict: comma-separated list or a text file, one per line"
    )
    resize: int | None = Field(
        None, ge=0, description="shorter side fed to the model; default the weights' preference; 0 = native size"
    )
    batch_size: int | None = Field(
        None, gt=0, description="images per inference batch; default 4 on CPU (measured best), 32 on GPU"
    )
    decode_batch_size: int = Field(16, gt=0, description="images per decode task batch")
    jpeg_decode: Literal["auto", "tasks", "actor"] = Field(
        "tasks",
        description="where plain JPEGs are decoded: tasks (Pillow, CPU decode tasks: torchvision's recipe, pixel "
        "for pixel); actor (the inference actor, nvJPEG on its GPU and torch's resize: trades pixels, 99.70%% of "
        "a photo's mask pixels equal; see BENCHMARKS.md); auto: the same as tasks (kept for configs that name it)",
    )
    actors_min: int | None = Field(
        None,
        ge=1,
        description="smallest inference actor pool; default the whole pool (1 while fewer GPUs are up than it wants)",
    )
    actors_max: int | None = Field(
        None, ge=1, description="largest inference actor pool; default from cluster resources"
    )
    num_gpus: float | None = Field(
        None, ge=0, description="GPUs per inference actor (fractions allowed); default 1 if the cluster has GPUs"
    )
    cpus_per_actor: float = Field(1.0, gt=0, description="CPUs reserved per inference actor")
    calls_per_actor: int = Field(
        1, ge=1, description="batches each inference actor takes at once: Ray's batching overlaps the model's work"
    )
    threads: int | None = Field(None, gt=0, description="torch threads per CPU actor; default its reserved CPUs")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="inference device; auto: CUDA when present")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="CUDA autocast dtype; auto: bf16 where supported, else fp16; CPU always fp32"
    )
    tile_size: int = Field(1024, ge=64, description="images with a side above this many pixels are segmented in tiles")
    tile_overlap: int = Field(128, ge=0, description="pixels shared by neighbouring tiles; cover the receptive field")
    scene_pixels: int = Field(
        SCENE_PIXELS,
        ge=0,
        description="a tiled TIFF/COG/BigTIFF/slide above this many pixels is read by window as tile rows spread "
        "over the pool, its mask a tiled raster at mask_uri (0: never; --max-pixels does not apply to it)",
    )
    level: int = Field(
        0, ge=0, description="pyramid level of tiled TIFFs and slides to segment (0: full size; above 0 every "
        "tiled TIFF is read by window at that level)",
    )  # fmt: skip
    scene_tile_rows: int = Field(
        8,
        gt=0,
        description="rows of tiles of a scene one inference actor reads in order, at most (fewer when "
        "the scene would give under 2 items per actor); the overlap between two items may be read twice",
    )
    bands: list[int] | None = Field(None, description="1-based bands of a multi-band TIFF used as R,G,B, e.g. 3,2,1")
    value_range: list[float] | None = Field(
        None, description="low,high values mapped to 0..255 for 16-bit/float rasters; default a percentile stretch"
    )
    stretch: list[float] = Field([2.0, 98.0], description="low,high percentiles of the default stretch")
    nodata: float | None = Field(None, description="raster value marking no-data (default the file's GDAL_NODATA)")
    dicom_window: list[float] | None = Field(None, description="DICOM window centre,width; default the file's own")
    jpeg_reduced_decode: bool = Field(
        False,
        description="trade pixels for speed: decode a JPEG fed at --resize at libjpeg's 1/2, 1/4 or 1/8 scale "
        "(a 12 MP photo at 520 px: 99.4%% of mask pixels equal the full decode; see BENCHMARKS.md)",
    )
    keep_transparent: bool = Field(
        False, description="segment fully transparent pixels like others instead of making them no-data (255)"
    )
    rows_per_file: int = Field(1000, gt=0, description="target rows per Parquet file")
    max_pixels: int = Field(PIL_DEFAULT_MAX_PIXELS, gt=0, description="images above this many pixels become error rows")
    max_bytes: int = Field(
        MAX_BYTES, gt=0, description="inputs above this many bytes become error rows (never read past it)"
    )
    mode: Literal["resume", "overwrite", "error"] = Field(
        "resume",
        description="resume: skip images already in --output; overwrite: start afresh; error: refuse non-empty output",
    )
    retry_errors: bool = Field(
        False, description="resume: do the inputs whose committed row is an error again (the newer row replaces it)"
    )
    limit: int | None = Field(None, gt=0, description="segment at most this many inputs (a quick try)")
    export: list[str] | None = Field(
        None,
        description=f"after the run, export the masks: {', '.join(EXPORT_NEEDS_CRS)} or all "
        "(see python -m jobs.export)",
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, value):
        if isinstance(value, str):
            if os.path.isfile(value):
                with open(value, encoding="utf-8") as f:
                    return [line.strip() for line in f if line.strip()]
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("bands", "value_range", "stretch", "dicom_window", mode="before")
    @classmethod
    def _split_numbers(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("value_range", "stretch", "dicom_window")
    @classmethod
    def _pair(cls, value):
        if value is not None and len(value) != 2:
            raise ValueError(f"expected two numbers, got {len(value)}")
        return value

    @field_validator("export", mode="before")
    @classmethod
    def _formats(cls, value):
        return None if value is None else parse_formats(value)

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODEL_NAMES:  # the registry's own message, without importing torch
            raise ValueError(f"unknown model {value!r}: choose one of {', '.join(MODEL_NAMES)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.weights is None:
            raise ValueError(
                f"weights: choose a registered name ({', '.join(WEIGHTS_NAMES)}), a checkpoint URI, "
                "or 'random' for untrained weights"
            )
        if problem := unknown_weights_name(self.weights):
            raise ValueError(problem)
        if self.actors_max is not None and self.actors_min is not None and self.actors_max < self.actors_min:
            raise ValueError(f"actors_max ({self.actors_max}) is below actors_min ({self.actors_min})")
        if self.tile_overlap * 2 >= self.tile_size:
            raise ValueError(f"tile_overlap ({self.tile_overlap}) must be under half of tile_size ({self.tile_size})")
        if self.input.rstrip("/") == self.output.rstrip("/"):
            raise ValueError("output must differ from input")
        return self

    @property
    def random_weights(self) -> bool:
        return self.weights == "random"

    def raster_options(self) -> RasterOptions:
        return RasterOptions(
            bands=tuple(self.bands) if self.bands else None,
            value_range=tuple(self.value_range) if self.value_range else None,
            stretch=tuple(self.stretch),
            nodata=self.nodata,
            dicom_window=tuple(self.dicom_window) if self.dicom_window else None,
            transparent_nodata=not self.keep_transparent,
        )


def load_config(overrides: dict, config_file: str | None = None, model: type[BaseModel] = RunConfig):
    """Merge a YAML file with flag overrides (flags win) and validate as ``model`` (RunConfig, ExportConfig).

    Raises:
        ConfigError: with one line per problem, naming the option.
    """
    values: dict = {}
    if config_file:
        try:
            with open(config_file, encoding="utf-8") as f:
                values = yaml.safe_load(f) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"--config {config_file}: cannot read it: {exc}"]) from exc
        if not isinstance(values, dict):
            raise ConfigError([f"--config {config_file}: expected a mapping of option: value"])
        values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update(overrides)
    try:
        return model(**values)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def _describe(err: dict) -> str:
    where = ".".join(str(p) for p in err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if not where:
        return message
    flag = "--" + where.replace("_", "-")
    if err["type"] == "extra_forbidden":
        return f"{flag}: unknown option"
    return f"{flag}: {message} (got {err.get('input')!r})" if err["type"] != "missing" else f"{flag}: required"
