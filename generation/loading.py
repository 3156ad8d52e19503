"""Loading a generator from a hub id or a local diffusers folder, whatever its family.

A folder is recognised by its ``model_index.json``; a hub id is first resolved to its local
snapshot, so both load through the same code. The bundled demo model is a folder like any other.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from generation.interface import DTYPES, Generator, GeneratorLimits, RenderInputError

# The default generator: trained on the synthetic demo catalog by `audiorag train generator` and
# shipped in the package (see its TRAINING.md), because no model hub is reachable where this runs.
log = logging.getLogger(__name__)

BUNDLED_GENERATOR = Path(__file__).resolve().parent / "models" / "generator-demo"


def resolve_folder(
    name_or_path: str | Path, revision: str | None = None, *, weights: bool = True
) -> tuple[Path, str]:
    """A local folder for a model, and the label for its id.

    A folder is used as is (never touches the network). A hub id is fetched to (or found in)
    the local Hugging Face cache first — only when someone configured one; without ``weights``
    only its configs and tokenizer files (all :func:`load_generator_limits` reads).
    """
    folder = Path(name_or_path)
    if folder.is_dir():
        return folder, folder.name
    # A hub id is "name" or "namespace/name" (dots allowed: "stable-audio-open-1.0").
    if str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") > 1:
        raise RenderInputError(f"generator folder {name_or_path} does not exist")
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        index_file = hf_hub_download(str(name_or_path), "model_index.json", revision=revision)
        snapshot = snapshot_download(
            str(name_or_path),
            revision=revision,
            allow_patterns=component_patterns(
                json.loads(Path(index_file).read_text()), weights=weights
            ),
        )
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise RenderInputError(
            f"generator {name_or_path!r} is neither a local folder nor in the local Hugging Face "
            f"cache, and the hub could not be reached ({type(err).__name__}); download it where "
            "the hub is reachable, or point AUDIORAG_GENERATOR_MODEL at a folder"
        ) from err
    return Path(snapshot), str(name_or_path)


def component_patterns(model_index: dict, *, weights: bool = True) -> list[str]:
    """The files a pipeline folder's loader reads: each component's configs, safetensors weights
    (unless not ``weights``) and tokenizer files, plus the folder-level JSON. Not the
    single-file checkpoint some repos also carry at the top (Stable Audio Open's
    ``model.safetensors``, 4.9 GB), nor ``.bin`` duplicates of safetensors weights.

    >>> component_patterns({"_class_name": "StableAudioPipeline", "vae": ["diffusers", "X"]})
    ['*.json', 'vae/*.json', 'vae/*.safetensors', 'vae/*.txt', 'vae/*.model', 'vae/tokenizer*']
    >>> component_patterns({"vae": ["diffusers", "X"]}, weights=False)
    ['*.json', 'vae/*.json', 'vae/*.txt', 'vae/*.model', 'vae/tokenizer*']
    """
    kinds = ("*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*")
    kinds = kinds if weights else tuple(kind for kind in kinds if kind != "*.safetensors")
    patterns = ["*.json"]
    for name in sorted(key for key in model_index if not key.startswith("_")):
        patterns.extend(f"{name}/{kind}" for kind in kinds)
    return patterns


def model_family(folder: Path) -> str:
    """Which family a diffusers folder holds, from its ``model_index.json``."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise RenderInputError(f"{folder} is not a diffusers model folder (no model_index.json)")
    class_name = json.loads(index_file.read_text()).get("_class_name", "")
    if class_name == "StableAudioPipeline":
        return "stable-audio-open"
    if class_name.startswith("StableAudio3"):
        return "stable-audio-3"
    raise RenderInputError(
        f"{folder}: unsupported pipeline {class_name!r} (expected StableAudioPipeline or "
        "StableAudio3Pipeline)"
    )


def weights_dtype(device: str, dtype: str) -> str:
    """The dtype the weights are loaded in: ``dtype``, except half precision on a CPU, which is
    mapped to float32 with a warning. CPUs have no fast float16 arithmetic (several of the VAE's
    convolutions have no float16 CPU kernel at all) and bfloat16 is slower than float32 on most
    of them, so a half-precision setting meant for a GPU would only make a CPU render slower or
    fail mid-way.

    >>> weights_dtype("cpu", "float16"), weights_dtype("cuda", "bfloat16")
    ('float32', 'bfloat16')
    """
    if dtype not in DTYPES:
        raise RenderInputError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dtype != "float32" and str(device).startswith("cpu"):
        log.warning(
            "dtype %s was asked for on the CPU: loading the generator in float32 instead "
            "(half precision is for GPUs; set AUDIORAG_DTYPE=float32 to silence this)",
            dtype,
        )
        return "float32"
    return dtype


def load_generator(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> Generator:
    """Load a generator from a hub id or a local diffusers folder, whatever its family."""
    folder, label = resolve_folder(name_or_path, revision)
    family = model_family(folder)
    torch_dtype = DTYPES[weights_dtype(device, dtype)]
    if family == "stable-audio-open":
        from generation.stable_audio_open import StableAudioOpen

        return StableAudioOpen.from_folder(
            folder, label=label, revision=revision, device=device, dtype=torch_dtype
        )
    from generation.stable_audio_3 import StableAudio3

    return StableAudio3.from_folder(
        folder, label=label, revision=revision, device=device, dtype=torch_dtype
    )


def load_generator_limits(
    name_or_path: str | Path, *, revision: str | None = None
) -> GeneratorLimits:
    """A generator's limits (what a request is checked against) from its folder's configs,
    without reading a byte of its weights: for a process that checks requests but renders none.
    Computed by the same family function the loaded generator's come from."""
    folder, _ = resolve_folder(name_or_path, revision, weights=False)
    if model_family(folder) == "stable-audio-open":
        from generation.stable_audio_open import folder_limits as open_limits

        return open_limits(folder)
    from generation.stable_audio_3 import folder_limits as sa3_limits

    return sa3_limits(folder)
