"""The torch engine's evaluation: predictions only, the metrics are Tempered's.

    python -m tempered_torch.predict job.json

For each named record file it writes `<out_dir>/<name>.jsonl`: a classifier's predicted label per
record (`{"id", "predicted"}`), or a language model's summed negative log-likelihood and token
count (`{"id", "nll", "tokens"}`); an `sft` model's rows add its greedy reply (`"generated"`, at
most `max_new_tokens` tokens) and count the reply's tokens only. With `generate` a causal LM also
writes `<name>.generations.jsonl`: the first 48 records' first halves continued greedily,
`{"id", "generated", "reference"}` (the tfjs engine's BLEU/ROUGE semantics). Tempered computes accuracy, macro-F1, perplexity, ... from them
with the same code for every engine, so the engines' numbers are comparable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .finetune import BadInput, emit, job_main, peak_memory_bytes, read_records

# A causal LM's continuations are scored on this many records, as the tfjs engine's are.
GENERATION_RECORDS = 48
from .chat import ChatFormatError, continue_text, score_sft
from .inference import score_rows


def load_model(job: dict[str, Any]):
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    if job.get("quantized"):
        from .quantize import load_quantized

        return load_quantized(job["model_dir"], job["objective"], job.get("labels", []))
    model_dir = job["model_dir"]
    base = job.get("base")
    source = base["dir"] if job.get("adapter") else model_dir
    kwargs = {"gguf_file": base["gguf_file"]} if job.get("adapter") and base.get("gguf_file") else {}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if job["objective"] == "classify":
        labels = job["labels"]
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)}, torch_dtype=torch.float32, **kwargs
        )
    else:
        auto = AutoModelForMaskedLM if job["objective"] == "mlm" else AutoModelForCausalLM
        model = auto.from_pretrained(source, torch_dtype=torch.float32, **kwargs)
    if job.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_dir).merge_and_unload()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def run(job: dict[str, Any]) -> None:
    import torch

    if job.get("threads", 0) > 0:
        torch.set_num_threads(job["threads"])
    model, tokenizer = load_model(job)
    # int8 layers run on CPU kernels (fbgemm) only.
    device = torch.device("cuda" if torch.cuda.is_available() and not job.get("quantized") else "cpu")
    model.to(device)
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    size, max_length = int(job.get("batch_size", 16)), int(job.get("max_length", 128))
    labels = job.get("labels", [])
    max_new_tokens = int(job.get("max_new_tokens", 32))
    started = time.perf_counter()
    tokens = examples = 0
    total = 0
    files = {name: read_records(path, f"the {name} records") for name, path in job["records"].items()}
    total = sum(len(r) for r in files.values())
    with torch.no_grad():
        for name, records in files.items():
            with (out_dir / f"{name}.jsonl").open("w", encoding="utf-8") as out:
                for start in range(0, len(records), size):
                    rows = records[start : start + size]
                    if job["objective"] == "sft":
                        try:
                            scored, count = score_sft(model, tokenizer, rows, max_length, max_new_tokens, device)
                        except ChatFormatError as err:
                            raise BadInput(str(err)) from err
                    else:
                        scored, count = score_rows(model, tokenizer, rows, job["objective"], labels, max_length, device, seed=start, window_overlap=job.get("window_overlap"))
                    tokens += count
                    out.write("".join(json.dumps(row) + "\n" for row in scored))
                    examples += len(rows)
                    emit("progress", phase=f"predicting ({name})", done=examples, total=total)
                if job.get("generate") and job["objective"] == "causal-lm":
                    emit("progress", phase=f"generating ({name})", done=examples, total=total)
                    with (out_dir / f"{name}.generations.jsonl").open("w", encoding="utf-8") as gen:
                        head = records[:GENERATION_RECORDS]
                        for start in range(0, len(head), size):
                            rows = continue_text(model, tokenizer, head[start : start + size], max_length, max_new_tokens, device)
                            gen.write("".join(json.dumps(row) + "\n" for row in rows))
    seconds = max(time.perf_counter() - started, 1e-9)
    emit(
        "metrics",
        samplesPerSec=round(examples / seconds, 2),
        tokensPerSec=round(tokens / seconds, 1),
        parameters=sum(p.numel() for p in model.parameters()),
        peakMemoryBytes=peak_memory_bytes(device),
        torch=torch.__version__,
    )


def main(argv: list[str]) -> int:
    return job_main(argv, "predict", lambda path: run(json.loads(Path(path).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
