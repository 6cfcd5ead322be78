"""``python -m tempered_torch.check``: one JSON line saying what this environment can run.

Imports torch, transformers and peft (so a broken install fails here, exit 1), then prints the
versions, the device training would use, and where the packaged models are. Keys are camelCase,
as in the rest of Tempered's JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys

from .packaged_models import PACKAGED_MODELS

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "safetensors", "tokenizers", "gguf", "numpy", "sentencepiece")


def check() -> dict[str, object]:
    """What the environment holds, as a JSON-ready dict."""
    import peft  # noqa: F401  imported to prove it loads
    import torch
    import transformers  # noqa: F401

    cuda = torch.cuda.is_available()
    models: dict[str, str | None] = {}
    for name, model in PACKAGED_MODELS.items():
        try:
            directory = model.directory()
            models[name] = str(directory / model.gguf_file) if model.gguf_file else str(directory)
        except ModuleNotFoundError:
            models[name] = None
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": {name: importlib.metadata.version(name) for name in LIBRARIES},
        "device": "cuda" if cuda else "cpu",
        "cuda": cuda,
        "cudaVersion": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "threads": torch.get_num_threads(),
        "packagedModels": models,
    }


def main() -> int:
    print(json.dumps(check()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
