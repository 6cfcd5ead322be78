"""A torch classifier kept loaded for `tempered serve`: requests in, class probabilities out.

    python -m tempered_torch.serve job.json

The job is the model part of a predict job (activities/torch/model.ts ModelJob). Once the model is
loaded it prints `{"tempered": "ready", "labels": [...], "device": ...}`; then each line on stdin,
`{"id": n, "texts": [...]}`, is answered by one line on stdout, `{"id": n, "predictions": [{"label",
"scores": {label: probability}}]}`, or `{"id": n, "error": "..."}`. It scores texts as the evaluate
stage does (truncated to the model's max_length, or whole over overlapping windows when it was
trained on windows), so a served label is the label evaluation counted. It ends when stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .finetune import BadInput, emit, job_main
from .inference import windows
from .predict import load_model


# Windows per forward pass.
WINDOW_BATCH = 16


def class_logits(model, tokenizer, texts: list[str], max_length: int, overlap: int | None, device) -> Any:
    """[len(texts), classes] logits: each text truncated to max_length, or with `overlap` the mean
    over its overlapping windows (inference.score_windows' rule)."""
    import torch

    if overlap is None:
        batch = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt").to(device)
        return model(**batch).logits.float()
    per_text = [windows(tokenizer, text, max_length, overlap) for text in texts]
    flat = [ids for ws in per_text for ids in ws]
    # In slices, as score_windows does: a long text is many windows.
    chunks = []
    for at in range(0, len(flat), WINDOW_BATCH):
        batch = tokenizer.pad({"input_ids": flat[at : at + WINDOW_BATCH]}, return_tensors="pt").to(device)
        chunks.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float())
    logits = torch.cat(chunks)
    out, start = [], 0
    for ws in per_text:
        out.append(logits[start : start + len(ws)].mean(0))
        start += len(ws)
    return torch.stack(out)


def run(job: dict[str, Any]) -> None:
    import torch

    if job["objective"] != "classify":
        raise BadInput(f"tempered_torch.serve serves classifiers; this model's objective is {job['objective']}")
    if job.get("threads", 0) > 0:
        torch.set_num_threads(job["threads"])
    model, tokenizer = load_model(job)
    device = torch.device("cuda" if torch.cuda.is_available() and not job.get("quantized") else "cpu")
    model.to(device)
    labels, max_length, overlap = job["labels"], int(job.get("max_length", 128)), job.get("window_overlap")
    emit("ready", labels=labels, device=str(device), parameters=sum(p.numel() for p in model.parameters()))
    for line in sys.stdin:
        if not line.strip():
            continue
        request: dict[str, Any] = {}
        try:
            request = json.loads(line)
            texts = request["texts"]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError('"texts" must be a list of strings')
            with torch.no_grad():
                probabilities = torch.softmax(class_logits(model, tokenizer, texts, max_length, overlap, device), dim=-1).tolist() if texts else []
            predictions = [{"label": labels[max(range(len(p)), key=p.__getitem__)], "scores": dict(zip(labels, p))} for p in probabilities]
            # allow_nan=False: a NaN score is an error answer, not a line JSON cannot parse.
            line = json.dumps({"id": request.get("id"), "predictions": predictions}, allow_nan=False)
        except Exception as err:  # one bad request is answered, never the end of the server
            line = json.dumps({"id": request.get("id"), "error": f"{type(err).__name__}: {err}"})
        print(line, flush=True)


def main(argv: list[str]) -> int:
    return job_main(argv, "serve", lambda path: run(json.loads(Path(path).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
