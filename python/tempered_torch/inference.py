"""Scoring records with a loaded model: what distill and quantize measure their models with.

A classifier's rows are `{"id", "predicted"}`; a language model's `{"id", "nll", "tokens"}` (summed
negative log-likelihood of each token after the first). Tempered's TypeScript side turns them into
accuracy, macro-F1 or perplexity with the same code for every engine.
"""

from __future__ import annotations

import time
from typing import Any, Callable


def score_rows(model, tokenizer, rows: list[dict[str, Any]], objective: str, labels: list[str], max_length: int, device=None) -> list[dict[str, Any]]:
    """One batch of records scored (no gradients)."""
    import torch

    batch = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    if device is not None:
        batch = batch.to(device)
    with torch.no_grad():
        logits = model(**batch).logits
    if objective == "classify":
        return [{"id": r.get("id"), "predicted": labels[int(p)]} for r, p in zip(rows, logits.argmax(-1).tolist())]
    targets = batch["input_ids"][:, 1:]
    mask = batch["attention_mask"][:, 1:].bool()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, reduction="none")
    return [{"id": r.get("id"), "nll": float(nll[i][mask[i]].sum()), "tokens": int(mask[i].sum())} for i, r in enumerate(rows)]


def score_records(model, tokenizer, records, objective: str, labels: list[str], max_length: int, batch_size: int = 16, device=None, progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(records), batch_size):
        out.extend(score_rows(model, tokenizer, records[start : start + batch_size], objective, labels, max_length, device))
        if progress:
            progress(len(out))
    return out


def latency_ms(models: dict[str, Any], tokenizer, records, objective: str, labels: list[str], max_length: int, rounds: int = 3, batch_size: int = 16) -> dict[str, float]:
    """Milliseconds per record to score `records` in batches, for each model: one warm-up batch,
    then `rounds` rounds taking the models in turn (so load on the machine falls on each alike); the
    median round counts."""
    if not records:
        return {name: float("nan") for name in models}
    for model in models.values():
        score_rows(model, tokenizer, records[:batch_size], objective, labels, max_length)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            score_records(model, tokenizer, records, objective, labels, max_length, batch_size)
            times[name].append((time.perf_counter() - started) * 1000 / len(records))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}
