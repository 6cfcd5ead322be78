"""Dynamic int8 against float32 inference on MiniLM (from its PyPI package), in one process:
the quantize stage's own code (tempered_torch.quantize) and its latency measure (alternating
rounds, median), on 64 synthetic mails at up to 128 tokens, batch 16, this machine's threads.

    python python/bench/int8_latency.py [rounds=5]     # prints one JSON line
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tempered_torch.inference import latency_ms
from tempered_torch.packaged_models import MINILM
from tempered_torch.quantize import load_quantized, quantize_dynamic_int8, save_quantized, WEIGHTS

warnings.filterwarnings("ignore")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    base = MINILM.directory()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(base)
    words = "win free money prize now offer meeting notes attached team lunch report schedule invoice please review".split()
    records = [{"id": str(i), "text": " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(60 + i % 80))} for i in range(64)]
    with tempfile.TemporaryDirectory() as tmp:
        save_quantized(model, quantize_dynamic_int8(model), tokenizer, Path(tmp), {"objective": "classify", "labels": ["ham", "spam"]})
        int8, _ = load_quantized(tmp, "classify", ["ham", "spam"])
        size = (Path(tmp) / WEIGHTS).stat().st_size
    timing = latency_ms({"float32": model, "int8": int8}, tokenizer, records, "classify", ["ham", "spam"], 128, rounds=rounds)
    print(json.dumps({"threads": torch.get_num_threads(), "rounds": rounds, "msPerRecord": {k: round(v, 3) for k, v in timing.items()}, "speedup": round(timing["float32"] / timing["int8"], 3), "bytes": {"float32": sum(p.numel() * 4 for p in model.state_dict().values()), "int8": size}}))


if __name__ == "__main__":
    main()
