"""Training step time of a GPT-2-architecture model in PyTorch, for bench/training.ts: the tfjs
trainer's model shape (pre-LN blocks, learned positions, tied LM head) with the same batch, tokens
and optimizer, so the two engines' numbers compare.

    python gpt_step.py '{"vocabSize": 2000, "context": 128, "layers": 2, "dModel": 128, "heads": 4, "batchSize": 16, "threads": 2, "warmup": 2, "timed": 6}'

Prints one JSON line: {"threads", "params", "secondsPerStep", "timedSteps", "torch"}.
"""

import json
import sys
import time


def main() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    case = json.loads(sys.argv[1])
    torch.set_num_threads(int(case["threads"]))
    torch.manual_seed(1)
    config = GPT2Config(
        vocab_size=case["vocabSize"],
        n_positions=case["context"],
        n_embd=case["dModel"],
        n_layer=case["layers"],
        n_head=case["heads"],
        n_inner=4 * case["dModel"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, case["vocabSize"], (case["batchSize"], case["context"]), generator=generator) for _ in range(4)]
    seconds = []
    for step in range(case["warmup"] + case["timed"]):
        tokens = batches[step % len(batches)]
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        seconds.append(time.perf_counter() - started)
    timed = sorted(seconds[case["warmup"] :])
    print(json.dumps({"threads": torch.get_num_threads(), "params": sum(p.numel() for p in model.parameters()), "secondsPerStep": timed[len(timed) // 2], "timedSteps": case["timed"], "torch": torch.__version__}))


if __name__ == "__main__":
    main()
