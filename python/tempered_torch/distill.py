"""The torch engine's distillation: a student with fewer layers learns its teacher's logits.

    python -m tempered_torch.distill job.json

The student keeps the teacher's architecture and tokenizer with `student_layers` of its layers,
initialised from evenly spaced teacher layers (first and last kept; DistilBERT's recipe) and every
other weight copied. The loss is `alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE`, with
both distributions softened by temperature T: per record for `classify`, per token for `causal-lm`.
Checkpoints, resume and protocol lines are the fine-tune's (finetune.py). At the end both models
score the validation records (`teacher.jsonl`, `student.jsonl` in the output's `eval/`) and their
latency is measured side by side; Tempered computes the metrics from those rows.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .finetune import BadInput, Batches, Job, emit, job_main, load_checkpoint, lr_lambda, peak_memory_bytes, start_job, train_steps
from .inference import latency_ms, score_records
from .predict import load_model

# Layer containers of the architectures transformers names (BERT `layer`, Llama `layers`, GPT-2 `h`, T5 `block`).
LAYER_KEY = re.compile(r"\.(layer|layers|h|block)\.(\d+)\.")


@dataclass
class DistillJob(Job):
    # The teacher as predict.load_model reads it: model_dir, adapter, base, objective, labels.
    teacher: dict[str, Any] = field(default_factory=dict)
    student_layers: int = 1
    temperature: float = 2.0
    alpha: float = 0.5
    eval_dir: str = ""


def kept_layers(total: int, keep: int) -> list[int]:
    """Evenly spaced layer indices, first and last included: 6 → 3 keeps [0, 2, 5]... (rounded)."""
    if keep == 1:
        return [0]
    return [round(i * (total - 1) / (keep - 1)) for i in range(keep)]


def make_student(teacher, layers: int):
    """The teacher's architecture with `layers` layers, its weights taken from the teacher's."""
    config = copy.deepcopy(teacher.config)
    total = getattr(config, "num_hidden_layers", None)
    if not isinstance(total, int):
        raise BadInput(f"the teacher ({type(teacher).__name__}) does not say how many layers it has (config.num_hidden_layers); distill needs a transformer with a layer count")
    if not 1 <= layers < total:
        raise BadInput(f"the student needs fewer layers than its teacher's {total}: set model.layers to 1 … {total - 1} (it is {layers})")
    config.num_hidden_layers = layers
    student = type(teacher)(config)
    keep = kept_layers(total, layers)
    source = teacher.state_dict()
    state = {}
    for key, value in student.state_dict().items():
        teacher_key = LAYER_KEY.sub(lambda m: f".{m.group(1)}.{keep[int(m.group(2))]}.", key, count=1)
        if teacher_key in source and source[teacher_key].shape == value.shape:
            state[key] = source[teacher_key].detach().clone()
    student.load_state_dict(state, strict=False)
    return student, keep, len(state) / max(1, len(student.state_dict()))


def kd_loss(student_logits, teacher_logits, mask, temperature: float):
    """T² · KL(teacher_T ‖ student_T), averaged over records (classify) or unmasked tokens (LM)."""
    import torch.nn.functional as F

    t = temperature
    log_p = F.log_softmax(student_logits.float() / t, dim=-1)
    q = F.softmax(teacher_logits.float() / t, dim=-1)
    per_item = F.kl_div(log_p, q, reduction="none").sum(-1)
    if mask is None:
        return per_item.mean() * t * t
    mask = mask.float()
    return (per_item * mask).sum() / mask.sum().clamp(min=1) * t * t


def run(job: DistillJob) -> dict[str, Any]:
    import torch

    train, validation = start_job(job)
    teacher, tokenizer = load_model(job.teacher)  # a float model: the stage refuses an int8 teacher
    student, keep, copied = make_student(teacher, job.student_layers)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher.to(device).eval()
    student.to(device).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=job.lr, weight_decay=job.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(job))
    batches = Batches(train, tokenizer, job, device)
    start = 0
    resumed_from = None
    if job.resume_dir:
        start = load_checkpoint(Path(job.resume_dir), student, optimizer, scheduler)
        resumed_from = start

    def loss_of(batch):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            teacher_logits = teacher(**inputs).logits
        out = student(**batch)
        if job.objective == "classify":
            kd = kd_loss(out.logits, teacher_logits, None, job.temperature)
        else:
            kd = kd_loss(out.logits[:, :-1], teacher_logits[:, :-1], batch["attention_mask"][:, 1:], job.temperature)
        return {"loss": job.alpha * kd + (1 - job.alpha) * out.loss, "kdLoss": kd, "ceLoss": out.loss}

    started = time.perf_counter()
    tokens, last_loss, training_seconds = train_steps(job, student, batches, optimizer, scheduler, device, start, validation, loss_of)

    output = Path(job.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    elapsed = time.perf_counter() - started
    student.eval()
    timing: dict[str, float] = {}
    if validation and job.eval_dir:
        # Both models score the same validation records; Tempered computes their metrics.
        eval_dir = Path(job.eval_dir)
        eval_dir.mkdir(parents=True, exist_ok=True)
        for name, model in (("teacher", teacher), ("student", student)):
            rows = score_records(model, tokenizer, validation, job.objective, job.labels, job.max_length, device=device)
            (eval_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        timing = latency_ms({"teacher": teacher.cpu(), "student": student.cpu()}, tokenizer, validation[:64], job.objective, job.labels, job.max_length)
    metrics = {
        "engine": "torch",
        "torch": torch.__version__,
        "device": device.type,
        "peakMemoryBytes": peak_memory_bytes(device),
        "objective": job.objective,
        "steps": job.steps,
        "parameters": sum(p.numel() for p in student.parameters()),
        "trainableFraction": 1.0,
        "teacherParameters": sum(p.numel() for p in teacher.parameters()),
        "studentParameters": sum(p.numel() for p in student.parameters()),
        "teacherLayers": teacher.config.num_hidden_layers,
        "studentLayers": job.student_layers,
        "layersKept": keep,
        "initialisedFromTeacher": round(copied, 4),
        "tokensPerSec": round(tokens / max(training_seconds, 1e-9), 1),
        "trainingSeconds": round(training_seconds, 3),
        "wallSeconds": round(elapsed, 3),
        "finalLoss": round(last_loss, 6),
        **({"teacherLatencyMs": round(timing["teacher"], 4), "studentLatencyMs": round(timing["student"], 4)} if timing else {}),
    }
    if resumed_from is not None:
        metrics["resumedFromStep"] = resumed_from
    emit("metrics", **metrics)
    return metrics


def main(argv: list[str]) -> int:
    return job_main(argv, "distill", lambda path: run(DistillJob.load(path)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
