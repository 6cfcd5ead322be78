"""Supervised fine-tuning on conversations: the `sft` objective's formatting, masking and generation.

A record's `messages` ([{"role", "content"}], the last one the assistant's reply; Tempered's
TypeScript side builds them from prompt/response fields or the spec's `sft` templates) are
formatted with the tokenizer's own chat template (`apply_chat_template`). Training computes the
loss on the assistant turns' tokens only: every other position (system, user, the template's role
headers, padding) has label -100. With packing, training rows hold several conversations each,
kept apart by position_ids (pack_sft, encode_packed). Evaluation generates greedily from the
conversation up to the last assistant turn.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


class ChatFormatError(ValueError):
    """A conversation the template cannot format as training needs (the caller turns it into BadInput)."""


def require_chat_template(tokenizer, base: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ChatFormatError(
            f"base {base}: its tokenizer has no chat template (no chat_template in tokenizer_config.json or the GGUF metadata), so sft cannot format conversations; "
            "use an instruct/chat checkpoint (e.g. SmolLM2-135M-Instruct), or train with objective causal-lm on text you format yourself"
        )


def messages_of(record: dict[str, Any]) -> list[dict[str, str]]:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages):
        raise ChatFormatError(f"record {record.get('id')!r}: sft needs \"messages\": a list of {{role, content}} strings")
    if messages[-1]["role"] != "assistant":
        raise ChatFormatError(f"record {record.get('id')!r}: the last message must be the assistant's reply (found role {messages[-1]['role']!r})")
    return messages


def render(tokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict[str, str]], record_id: Any) -> tuple[str, list[tuple[int, int]]]:
    """The formatted conversation and the character spans of its assistant turns: each turn is
    what the template adds between the conversation before it (with the generation prompt) and
    the conversation through it (so the turn's end-of-turn token is learned, its header is not)."""
    text = render(tokenizer, messages, False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], True) if i > 0 else ""
        through = render(tokenizer, messages[: i + 1], False)
        if not text.startswith(through) or not through.startswith(before):
            raise ChatFormatError(f"record {record_id!r}: the chat template does not format this conversation turn by turn (an earlier turn changes when later ones follow), so the assistant's tokens cannot be found")
        spans.append((len(before), len(through)))
    return text, spans


def sft_example(tokenizer, record: dict[str, Any], max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels of one conversation, at most `max_length` tokens. Too long: the last
    non-assistant message before the final reply is shortened (the prompt side) until the whole
    fits; a reply that alone does not fit keeps its beginning."""
    messages = [dict(m) for m in messages_of(record)]
    for _ in range(4):
        ids, labels = _tokenize(tokenizer, messages, record.get("id"))
        excess = len(ids) - max_length
        if excess <= 0:
            return ids, labels
        if not _shorten_prompt(tokenizer, messages, excess):
            break
    ids, labels = _tokenize(tokenizer, messages, record.get("id"))
    return ids[:max_length], labels[:max_length]


def _tokenize(tokenizer, messages, record_id) -> tuple[list[int], list[int]]:
    text, spans = assistant_spans(tokenizer, messages, record_id)
    # The template writes the special tokens (BOS, turn markers) itself.
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels = [token if any(start <= begin < end for start, end in spans) else IGNORE for token, (begin, _) in zip(ids, encoded["offset_mapping"])]
    return ids, labels


def _shorten_prompt(tokenizer, messages, excess: int) -> bool:
    """Drops `excess` (+ a few, for merges at the cut) tokens from the end of the longest
    non-assistant message before the last reply; False when none has any left to give."""
    candidates = [i for i, m in enumerate(messages[:-1]) if m["role"] != "assistant" and m["content"]]
    if not candidates:
        return False
    i = max(candidates, key=lambda k: len(messages[k]["content"]))
    ids = tokenizer(messages[i]["content"], add_special_tokens=False)["input_ids"]
    keep = max(0, len(ids) - excess - 2)
    messages[i]["content"] = tokenizer.decode(ids[:keep], skip_special_tokens=True)
    return True


def encode_sft(tokenizer, rows: list[dict[str, Any]], max_length: int):
    """A right-padded training batch: input_ids, attention_mask, labels (-100 outside the assistant's tokens)."""
    import torch

    examples = [sft_example(tokenizer, r, max_length) for r in rows]
    width = max(len(ids) for ids, _ in examples)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, (ids, lab) in enumerate(examples):
        input_ids[j, : len(ids)] = torch.tensor(ids)
        labels[j, : len(lab)] = torch.tensor(lab)
        mask[j, : len(ids)] = 1
    from transformers import BatchEncoding

    return BatchEncoding({"input_ids": input_ids, "attention_mask": mask, "labels": labels})


def pack_sft(tokenizer, records: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Conversations (each `sft_example`, so shortened as unpacked training would) packed into rows
    of at most `max_length` tokens, best-fit decreasing: longest first, each into the row it fills
    most tightly. Ties keep record order, so the rows are a function of the records, the tokenizer
    and max_length alone (a resumed run sees the same rows; the seed shuffles them per epoch, as it
    does records). A row: input_ids, labels, `conversation_lengths` (in order) and `ids` (their records').
    Each conversation's first label is -100, so no conversation learns to predict the next one's
    start (unpacked, a row's first token is never a target either); a conversation under two
    tokens has nothing to learn and is left out, which keeps padding recognisable (encode_packed)."""
    import bisect

    examples = [(record.get("id"), *sft_example(tokenizer, record, max_length)) for record in records]
    examples = [e for e in examples if len(e[1]) >= 2]
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i][1]))
    rows: list[list[int]] = []  # the conversations of each row, as indices into examples
    space: list[tuple[int, int]] = []  # (tokens a row has left, row), ascending
    for i in order:
        size = len(examples[i][1])
        k = bisect.bisect_left(space, (size, -1))  # the fullest row that still fits it
        if k == len(space):
            rows.append([i])
            left, row = max_length - size, len(rows) - 1
        else:
            left, row = space.pop(k)
            rows[row].append(i)
            left -= size
        if left > 0:
            bisect.insort(space, (left, row))
    packed = []
    for members in rows:
        input_ids: list[int] = []
        labels: list[int] = []
        for i in members:
            _, ids, lab = examples[i]
            input_ids += ids
            labels += [IGNORE, *lab[1:]]
        packed.append({"ids": [examples[i][0] for i in members], "conversation_lengths": [len(examples[i][1]) for i in members], "input_ids": input_ids, "labels": labels})
    return packed


def packing_metrics(rows: list[dict[str, Any]], max_length: int) -> dict[str, Any]:
    """How many conversations went into how many rows, and the share of the rows' tokens that are real (not padding)."""
    tokens = sum(len(r["input_ids"]) for r in rows)
    return {"packedRows": len(rows), "packedConversations": sum(len(r["conversation_lengths"]) for r in rows), "packingEfficiency": round(tokens / max(1, len(rows) * max_length), 4)}


def encode_packed(rows: list[dict[str, Any]], pad_token_id: int):
    """A batch of packed rows (pack_sft): input_ids, labels and position_ids that restart at 0 with
    each conversation, and no attention_mask. Given position_ids and no mask, transformers' mask
    (masking_utils.find_packed_sequence_indices) makes attention block-diagonal: a conversation
    sees only its own earlier tokens, under sdpa and eager attention (what a base loads with here;
    flash attention reads packing only from a single flattened row). That detection is skipped
    when a cache is passed, so `use_cache` is off (a Llama config's default is on, which would
    silently let conversations see each other; tests/test_packing.py holds both to account).
    Padding ends a short row; each pad has position 0 and label -100, a sequence of its own that
    attends only to itself and that no token attends to."""
    import torch
    from transformers import BatchEncoding

    width = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        length = len(row["input_ids"])
        input_ids[j, :length] = torch.tensor(row["input_ids"])
        labels[j, :length] = torch.tensor(row["labels"])
        positions[j, :length] = torch.cat([torch.arange(n) for n in row["conversation_lengths"]])
    return BatchEncoding({"input_ids": input_ids, "labels": labels, "position_ids": positions, "use_cache": False})


def packed_tokens(position_ids) -> int:
    """The real tokens of a packed batch: every position but the padding, which is each position 0
    that does not start a conversation (one of two tokens or more, as pack_sft keeps)."""
    starts = (position_ids[:, :-1] == 0) & (position_ids[:, 1:] == 1)
    return int((position_ids != 0).sum() + starts.sum())


def prompt_ids(tokenizer, record: dict[str, Any], max_length: int) -> list[int]:
    """The conversation before its last reply, with the generation prompt: what generation starts
    from; shortened on the prompt side like training's, to at most `max_length` tokens."""
    messages = [dict(m) for m in messages_of(record)][:-1]
    for _ in range(4):
        ids = tokenizer(render(tokenizer, messages, True), add_special_tokens=False)["input_ids"]
        if len(ids) <= max_length or not _shorten_prompt(tokenizer, messages + [{"role": "assistant", "content": ""}], len(ids) - max_length):
            break
    return ids[-max_length:]


def generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, device=None) -> list[list[int]]:
    """Greedy continuations of token-id prompts, batched with left padding: the new tokens of each,
    up to its end of sequence. Deterministic (no sampling)."""
    import torch

    width = max(len(p) for p in prompts)
    pad = tokenizer.pad_token_id
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for j, p in enumerate(prompts):
        input_ids[j, width - len(p) :] = torch.tensor(p)
        mask[j, width - len(p) :] = 1
    if device is not None:
        input_ids, mask = input_ids.to(device), mask.to(device)
    eos = model.generation_config.eos_token_id if getattr(model, "generation_config", None) is not None else None
    if eos is None:
        eos = tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos, temperature=None, top_p=None, top_k=None)
    stops = set(eos if isinstance(eos, list) else [eos]) - {None}
    result = []
    for row in out[:, width:].tolist():
        cut = next((k for k, t in enumerate(row) if t in stops), len(row))
        result.append(row[:cut])
    return result


def score_sft(model, tokenizer, rows: list[dict[str, Any]], max_length: int, max_new_tokens: int, device=None) -> tuple[list[dict[str, Any]], int]:
    """One batch of conversations: the summed NLL and count of the reply's tokens (teacher-forced),
    the greedy generation from the prompt, and the tokens read."""
    import torch

    batch = encode_sft(tokenizer, rows, max_length)
    if device is not None:
        batch = batch.to(device)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    targets = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none")
    counted = targets != IGNORE
    generated = generate(model, tokenizer, [prompt_ids(tokenizer, r, max(1, max_length - max_new_tokens)) for r in rows], max_new_tokens, device)
    out = [
        {"id": r.get("id"), "nll": float(losses[i][counted[i]].sum()), "tokens": int(counted[i].sum()), "generated": tokenizer.decode(g, skip_special_tokens=True).strip()}
        for i, (r, g) in enumerate(zip(rows, generated))
    ]
    return out, int(batch["attention_mask"].sum())


def continue_text(model, tokenizer, rows: list[dict[str, Any]], max_length: int, max_new_tokens: int, device=None) -> list[dict[str, Any]]:
    """A causal LM's generation metric input, as the tfjs engine's: the first half of each text (at
    most max_length - max_new_tokens tokens) continued greedily, against the text's next
    max_new_tokens tokens. Texts under 16 tokens are skipped."""
    cases = []
    for r in rows:
        ids = tokenizer(r["text"], add_special_tokens=True)["input_ids"]
        if len(ids) < 16:
            continue
        cut = min(len(ids) // 2, max(1, max_length - max_new_tokens))
        cases.append((r, ids[:cut], ids[cut : cut + max_new_tokens]))
    if not cases:
        return []
    generated = generate(model, tokenizer, [p for _, p, _ in cases], max_new_tokens, device)
    return [
        {"id": r.get("id"), "generated": tokenizer.decode(g[: len(ref)], skip_special_tokens=True).strip(), "reference": tokenizer.decode(ref, skip_special_tokens=True).strip()}
        for (r, _, ref), g in zip(cases, generated)
    ]
