"""The torch fine-tune's durability, on a tiny BERT built from a config (no downloads):

    python python/tests/finetune_resume.py <work dir>

Trains 6 steps with a checkpoint every 2; then starts again from the step-4 checkpoint, as a
retried attempt would; the resumed run must end with weights identical to the uninterrupted one.
Also saves and reloads the result with plain `from_pretrained`. Prints one JSON line of findings;
exits non-zero when a check fails.
"""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_base import tiny_bert  # noqa: E402


def records(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            spam = i % 3 == 0
            text = ("win free money prize now offer" if spam else "meeting notes attached team lunch report") + f" {'the a ' * (i % 4)}"
            f.write(json.dumps({"id": f"r{i}", "text": text, "label": "spam" if spam else "ham"}) + "\n")


def job(work: Path, name: str, **over) -> Path:
    spec = {
        "objective": "classify",
        "base": {"dir": str(work / "base")},
        "train": str(work / "train.jsonl"),
        "validation": str(work / "validation.jsonl"),
        "output_dir": str(work / name / "out"),
        "checkpoint_dir": str(work / name / "checkpoints"),
        "steps": 6,
        "batch_size": 4,
        "lr": 1e-3,
        "warmup_steps": 1,
        "max_length": 16,
        "seed": 7,
        "checkpoint_every": 2,
        "validate_every": 3,
        "labels": ["ham", "spam"],
        "threads": 1,
        **over,
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def train(path: Path) -> list[dict]:
    here = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "tempered_torch.finetune", str(path)], cwd=here, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"tempered"')]


def main() -> int:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    work = Path(sys.argv[1])
    (work / "base").mkdir(parents=True, exist_ok=True)
    tiny_bert(work / "base")
    records(work / "train.jsonl", 40)
    records(work / "validation.jsonl", 12)

    whole = train(job(work, "whole"))
    checkpoints = [m for m in whole if m["tempered"] == "checkpoint"]
    resumed = train(job(work, "resumed", resume_dir=checkpoints[-1]["dir"]))
    a = load_file(str(work / "whole" / "out" / "model.safetensors"))
    b = load_file(str(work / "resumed" / "out" / "model.safetensors"))
    identical = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    reloaded = AutoModelForSequenceClassification.from_pretrained(work / "whole" / "out")
    findings = {
        "checkpoints": [c["step"] for c in checkpoints],
        "resumedFrom": next(m for m in resumed if m["tempered"] == "metrics").get("resumedFromStep"),
        "resumedSteps": [m["step"] for m in resumed if m["tempered"] == "progress"],
        "identical": identical,
        "reloadedLabels": reloaded.config.id2label,
        "final": next(m for m in whole if m["tempered"] == "metrics")["final"],
    }
    print(json.dumps(findings))
    ok = identical and findings["checkpoints"] == [2, 4] and findings["resumedSteps"] == [5, 6] and findings["resumedFrom"] == 4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
