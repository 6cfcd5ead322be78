"""Scoring records with a loaded model: what distill and quantize measure their models with.

A classifier's rows are `{"id", "predicted"}`; a language model's `{"id", "nll", "tokens"}` (summed
negative log-likelihood of each token after the first). Tempered's TypeScript side turns them into
accuracy, macro-F1 or perplexity with the same code for every engine.
"""

from __future__ import annotations

import time
from typing import Any, Callable


MLM_PROBABILITY = 0.15


def mlm_mask(input_ids, special_tokens_mask, tokenizer, seed: int):
    """BERT's masked-LM corruption, seeded: 15% of the non-special tokens are chosen (at least one
    per row that has any); of those 80% become [MASK], 10% a random token, 10% stay. Returns the
    corrupted ids and the labels (-100 except at the chosen positions). The same seed chooses the
    same positions, so a resumed run and every evaluation see the same masks."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    candidates = ~special_tokens_mask.bool()
    chosen = (torch.rand(input_ids.shape, generator=generator) < MLM_PROBABILITY) & candidates
    for row in range(input_ids.shape[0]):
        if not chosen[row].any() and candidates[row].any():
            positions = candidates[row].nonzero().flatten()
            chosen[row, positions[torch.randint(len(positions), (1,), generator=generator)]] = True
    labels = input_ids.clone()
    labels[~chosen] = -100
    corrupted = input_ids.clone()
    draw = torch.rand(input_ids.shape, generator=generator)
    corrupted[chosen & (draw < 0.8)] = tokenizer.mask_token_id
    random_tokens = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
    swap = chosen & (draw >= 0.8) & (draw < 0.9)
    corrupted[swap] = random_tokens[swap]
    return corrupted, labels


def encode_mlm(tokenizer, texts: list[str], max_length: int, seed: int):
    """Tokenized texts with BERT's masking applied (see mlm_mask): input_ids, attention_mask, labels."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt", return_special_tokens_mask=True)
    return masked(encoded, tokenizer, seed)


def masked(encoded, tokenizer, seed: int):
    """BERT's masking applied to an encoded batch (special and padding tokens never chosen)."""
    import torch

    if "special_tokens_mask" in encoded:
        special = encoded.pop("special_tokens_mask").bool()
    else:
        special = torch.tensor([tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True) for ids in encoded["input_ids"].tolist()]).bool()
    special = special | (encoded["attention_mask"] == 0)
    encoded["input_ids"], encoded["labels"] = mlm_mask(encoded["input_ids"], special, tokenizer, seed)
    return encoded


def windows(tokenizer, text: str, max_length: int, overlap: int) -> list[list[int]]:
    """A record's token ids as windows of `max_length` tokens, each starting `overlap` tokens before
    the previous one ends (the tokenizer's own overflow with stride: special tokens in every window)."""
    return tokenizer(text, truncation=True, max_length=max_length, stride=overlap, return_overflowing_tokens=True)["input_ids"]


def score_windows(model, tokenizer, rows: list[dict[str, Any]], objective: str, labels: list[str], max_length: int, overlap: int, device=None, seed: int = 0, batch_size: int = 16) -> tuple[list[dict[str, Any]], int]:
    """Records longer than the context scored whole, over overlapping windows: a classifier's
    window logits are averaged per record; a language model's token losses are summed per record,
    each token once (a window after the first counts only the tokens past its overlap)."""
    import torch

    per_record = [windows(tokenizer, r["text"], max_length, overlap) for r in rows]
    flat = [(i, k, ids) for i, ws in enumerate(per_record) for k, ids in enumerate(ws)]
    tokens = sum(len(ids) for _, _, ids in flat)
    logit_sums: dict[int, Any] = {}
    nll = [0.0] * len(rows)
    counted = [0] * len(rows)
    for start in range(0, len(flat), batch_size):
        chunk = flat[start : start + batch_size]
        batch = tokenizer.pad({"input_ids": [ids for _, _, ids in chunk]}, return_tensors="pt")
        if objective == "mlm":
            batch = masked(batch, tokenizer, seed * 1_000_003 + start)
        if device is not None:
            batch = batch.to(device)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        for j, (i, k, _) in enumerate(chunk):
            if objective == "classify":
                logit_sums[i] = logits[j] if i not in logit_sums else logit_sums[i] + logits[j]
                continue
            if objective == "mlm":
                targets, mask, row_logits = batch["labels"][j], batch["labels"][j] != -100, logits[j]
            else:
                targets, mask, row_logits = batch["input_ids"][j, 1:], batch["attention_mask"][j, 1:].bool().clone(), logits[j, :-1]
                if k > 0:
                    mask[: max(0, overlap - 1)] = False  # predicted already by the window before
            losses = torch.nn.functional.cross_entropy(row_logits, targets.clamp(min=0), reduction="none")
            nll[i] += float(losses[mask].sum())
            counted[i] += int(mask.sum())
    if objective == "classify":
        return [{"id": r.get("id"), "predicted": labels[int(logit_sums[i].argmax())], "windows": len(per_record[i])} for i, r in enumerate(rows)], tokens
    return [{"id": r.get("id"), "nll": nll[i], "tokens": counted[i], "windows": len(per_record[i])} for i, r in enumerate(rows)], tokens


def score_rows(model, tokenizer, rows: list[dict[str, Any]], objective: str, labels: list[str], max_length: int, device=None, seed: int = 0, window_overlap: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """One batch of records scored (no gradients), and the tokens it held. A masked LM is scored on
    its masked tokens, with masks seeded by `seed` (the batch's position), so the same records
    score the same. With `window_overlap`, long records are scored whole over windows (score_windows)."""
    import torch

    if window_overlap is not None:
        return score_windows(model, tokenizer, rows, objective, labels, max_length, window_overlap, device, seed)
    if objective == "mlm":
        batch = encode_mlm(tokenizer, [r["text"] for r in rows], max_length, seed)
        if device is not None:
            batch = batch.to(device)
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        mask = batch["labels"] != -100
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2).float(), batch["labels"].clamp(min=0), reduction="none")
        return [{"id": r.get("id"), "nll": float(nll[i][mask[i]].sum()), "tokens": int(mask[i].sum())} for i, r in enumerate(rows)], int(batch["attention_mask"].sum())
    batch = tokenizer([r["text"] for r in rows], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    if device is not None:
        batch = batch.to(device)
    with torch.no_grad():
        logits = model(**batch).logits
    if objective == "classify":
        return [{"id": r.get("id"), "predicted": labels[int(p)]} for r, p in zip(rows, logits.argmax(-1).tolist())], int(batch["attention_mask"].sum())
    targets = batch["input_ids"][:, 1:]
    mask = batch["attention_mask"][:, 1:].bool()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, reduction="none")
    return [{"id": r.get("id"), "nll": float(nll[i][mask[i]].sum()), "tokens": int(mask[i].sum())} for i, r in enumerate(rows)], int(batch["attention_mask"].sum())


def score_records(model, tokenizer, records, objective: str, labels: list[str], max_length: int, batch_size: int = 16, device=None, progress: Callable[[int], None] | None = None, window_overlap: int | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(records), batch_size):
        out.extend(score_rows(model, tokenizer, records[start : start + batch_size], objective, labels, max_length, device, seed=start, window_overlap=window_overlap)[0])
        if progress:
            progress(len(out))
    return out


def latency_ms(models: dict[str, Any], tokenizer, records, objective: str, labels: list[str], max_length: int, rounds: int = 3, batch_size: int = 16, window_overlap: int | None = None) -> dict[str, float]:
    """Milliseconds per record to score `records` in batches, for each model: one warm-up batch,
    then `rounds` rounds taking the models in turn (so load on the machine falls on each alike); the
    median round counts."""
    if not records:
        return {name: float("nan") for name in models}
    for model in models.values():
        score_rows(model, tokenizer, records[:batch_size], objective, labels, max_length, window_overlap=window_overlap)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            score_records(model, tokenizer, records, objective, labels, max_length, batch_size, window_overlap=window_overlap)
            times[name].append((time.perf_counter() - started) * 1000 / len(records))
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}
