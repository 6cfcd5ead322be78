"""A stored torch model as one plain Hugging Face checkpoint directory: LoRA adapters merged into
their base (PEFT's merge_and_unload), weights as safetensors, with its tokenizer.

    python -m tempered_torch.export_hf job.json

The job is predict.load_model's model job plus `out_dir`. Prints one JSON line: the files written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .finetune import BadInput, job_main
from .predict import load_model


def run(job: dict[str, Any]) -> dict[str, Any]:
    if job.get("quantized"):
        raise BadInput("an int8 model is stored in Tempered's own layout, which no Hugging Face loader reads: export the float model it was quantized from (or GGUF Q8_0 of it)")
    model, tokenizer = load_model(job)
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    result = {"files": sorted(p.name for p in out.iterdir() if p.is_file()), "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}
    print(json.dumps({"tempered": "metrics", **result}), flush=True)
    return result


def main(argv: list[str]) -> int:
    return job_main(argv, "export_hf", lambda path: run(json.loads(Path(path).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
