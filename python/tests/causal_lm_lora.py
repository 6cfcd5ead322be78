"""causal-lm with LoRA through both torch-engine modules, on a tiny GPT-2 built from a config:

    python python/tests/causal_lm_lora.py <work dir>

finetune trains adapters only; predict loads base + adapters and scores every record. Prints one
JSON line of findings; exits non-zero when a check fails.
"""

import json
import subprocess
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent.parent


def module(name: str, job: dict, work: Path) -> tuple[int, list[dict]]:
    path = work / f"{name}.json"
    path.write_text(json.dumps(job))
    done = subprocess.run([sys.executable, "-m", f"tempered_torch.{name}", str(path)], cwd=HERE, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return done.returncode, [json.loads(l) for l in done.stdout.splitlines() if l.startswith('{"tempered"')]


def main() -> int:
    work = Path(sys.argv[1])
    base = work / "base"
    base.mkdir(parents=True, exist_ok=True)
    words = "the a mail win prize now meeting notes attached hello".split()
    vocab = {t: i for i, t in enumerate(["<unk>", "<eos>", *words])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<eos>").save_pretrained(base)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_embd=16, n_layer=1, n_head=2, n_positions=32)).save_pretrained(base)
    records = work / "train.jsonl"
    records.write_text("".join(json.dumps({"id": f"r{i}", "text": "hello the mail win prize now " * (1 + i % 3)}) + "\n" for i in range(20)))

    code, trained = module("finetune", {"objective": "causal-lm", "base": {"dir": str(base)}, "train": str(records), "validation": str(records), "output_dir": str(work / "out"), "checkpoint_dir": str(work / "ck"), "steps": 4, "batch_size": 4, "max_length": 16, "validate_every": 2, "lora": {"rank": 2, "alpha": 4}}, work)
    metrics = next((m for m in trained if m["tempered"] == "metrics"), {})
    code2, _ = module("predict", {"objective": "causal-lm", "model_dir": str(work / "out"), "adapter": True, "base": {"dir": str(base)}, "records": {"test": str(records)}, "out_dir": str(work / "pred"), "max_length": 16}, work)
    scored = [json.loads(l) for l in (work / "pred" / "test.jsonl").read_text().splitlines()] if code2 == 0 else []
    findings = {
        "finetuneExit": code,
        "predictExit": code2,
        "adapterFiles": sorted(p.name for p in (work / "out").glob("adapter_*")),
        "trainableFraction": metrics.get("trainableFraction"),
        "scored": len(scored),
        "allFinite": all(s["nll"] > 0 and s["tokens"] > 0 for s in scored),
    }
    print(json.dumps(findings))
    ok = code == 0 and code2 == 0 and findings["adapterFiles"] == ["adapter_config.json", "adapter_model.safetensors"] and 0 < (metrics.get("trainableFraction") or 1) < 0.5 and findings["scored"] == 20 and findings["allFinite"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
