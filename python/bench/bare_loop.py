"""The baseline of bench/torch-engine.ts: the same fine-tune as tempered_torch.finetune, written as
the plain transformers loop a practitioner would write (no protocol lines, no checkpoints, no
validation), on the same model, records, batch size, length and steps.

    python python/bench/bare_loop.py <job.json>     # the engine's job file; prints tokens/s as JSON
"""

import json
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> None:
    job = json.load(open(sys.argv[1]))
    torch.manual_seed(job.get("seed", 42))
    records = [json.loads(l) for l in open(job["train"]) if l.strip()]
    labels = {l: i for i, l in enumerate(job["labels"])}
    tokenizer = AutoTokenizer.from_pretrained(job["base"]["dir"])
    model = AutoModelForSequenceClassification.from_pretrained(job["base"]["dir"], num_labels=len(labels))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job.get("weight_decay", 0.01))
    size = job["batch_size"]
    n = len(records)
    # The engine's batch order (a seeded permutation per epoch), so both pad the same batches.
    orders = {}

    def record(position: int) -> dict:
        epoch, offset = divmod(position, n)
        if epoch not in orders:
            orders[epoch] = np.random.default_rng([job.get("seed", 42), epoch]).permutation(n)
        return records[orders[epoch][offset]]

    tokens = 0
    started = time.perf_counter()
    for step in range(job["steps"]):
        rows = [record(step * size + i) for i in range(size)]
        batch = tokenizer([r["text"] for r in rows], truncation=True, max_length=job["max_length"], padding=True, return_tensors="pt")
        batch["labels"] = torch.tensor([labels[r["label"]] for r in rows])
        optimizer.zero_grad(set_to_none=True)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens += int(batch["attention_mask"].sum())
    print(json.dumps({"tokensPerSec": tokens / (time.perf_counter() - started), "steps": job["steps"]}))


if __name__ == "__main__":
    main()
