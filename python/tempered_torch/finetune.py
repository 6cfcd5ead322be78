"""The torch engine's fine-tune: one process per stage attempt, driven by a job file.

    python -m tempered_torch.finetune job.json

Tempered's TypeScript side stages the data, writes the job, runs this, turns its protocol lines
into heartbeats, uploads what it saves and owns every retry; this module only computes. It prints
single-line JSON on stdout (flushed):

    {"tempered": "progress", "step": 10, "totalSteps": 100, "loss": 2.31, "lr": ..., "tokensPerSec": ...}
    {"tempered": "checkpoint", "step": 50, "dir": "<checkpoint dir>"}   # complete on disk when printed
    {"tempered": "metrics", ...}                                        # once, at the end

Determinism: the batch of step s is a function of (seed, s) alone and the RNG states travel in
each checkpoint, so a run resumed from step k ends with the same weights as one that never
stopped (on CPU; GPU kernels may not be bitwise deterministic).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inference import encode_mlm, masked, windows
from .parallel import STRATEGIES, Parallel


class BadInput(Exception):
    """An input no retry can fix; the TypeScript side marks the attempt non-retryable (exit 3)."""


EXIT_BAD_INPUT = 3

OBJECTIVES = ("classify", "causal-lm", "mlm", "sft")


@dataclass
class Job:
    objective: str
    base: dict[str, Any]
    train: str
    validation: str | None
    output_dir: str
    checkpoint_dir: str
    steps: int
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_steps: int = 0
    max_length: int = 128
    seed: int = 42
    checkpoint_every: int = 0
    validate_every: int = 0
    validation_batches: int = 0
    # {"metric": valLoss|valAccuracy|valF1, "patience": n}: stop when the metric has not improved for n validations; the best weights are the model.
    early_stopping: dict[str, Any] | None = None
    labels: list[str] = field(default_factory=list)
    lora: dict[str, Any] | None = None
    # Save base + adapters merged into one full model (LoRA on a model that is itself a stage's artifact).
    merge_lora: bool = False
    # `truncate`: the first max_length tokens of a record; `windows`: every token, in windows overlapping by window_overlap.
    long_records: str = "truncate"
    window_overlap: int = 32
    # sft: several conversations per training row, up to max_length tokens (chat.pack_sft); validation stays one per row.
    packing: bool = False
    # `from` a LoRA-only model: the model job (predict.load_model) of its base + adapters, merged before training.
    from_model: dict[str, Any] | None = None
    resume_dir: str | None = None
    threads: int = 0
    init: str = "pretrained"
    # How several processes share the training (parallel.py): `ddp` replicates the model, `fsdp` shards it.
    parallel: str = "ddp"
    # Recompute each block's activations in backward instead of keeping them (less memory, more compute).
    gradient_checkpointing: bool = False

    @classmethod
    def load(cls, path: str):
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BadInput(f"job {path}: unknown keys {unknown}; known: {sorted(known)}")
        job = cls(**raw)
        if job.objective not in OBJECTIVES:
            raise BadInput(f"objective {job.objective!r} is not one of {OBJECTIVES}")
        if job.objective == "sft" and job.long_records == "windows":
            raise BadInput("sft trains whole conversations: longRecords windows does not apply (a long prompt is shortened instead); remove longRecords")
        if job.packing and job.objective != "sft":
            raise BadInput(f"packing puts several sft conversations in one row; objective {job.objective} trains records one per row: remove packing")
        if job.parallel not in STRATEGIES:
            raise BadInput(f"parallel {job.parallel!r} is not one of {STRATEGIES}")
        if job.objective == "classify" and len(job.labels) < 2:
            raise BadInput("a classify objective needs at least two labels")
        if job.early_stopping is not None:
            early_stopping_checks(job)
        return job


# Metrics early stopping can select on; the first is lowest-best, the others highest-best.
SELECTION_METRICS = ("valLoss", "valAccuracy", "valF1")


def early_stopping_checks(job: Job) -> None:
    metric, patience = job.early_stopping.get("metric"), job.early_stopping.get("patience")
    if metric not in SELECTION_METRICS:
        raise BadInput(f"earlyStopping.metric {metric!r} is not one of {SELECTION_METRICS}")
    if metric != "valLoss" and job.objective != "classify":
        raise BadInput(f"earlyStopping.metric {metric} needs objective classify; use valLoss for {job.objective}")
    if not (isinstance(patience, int) and patience >= 1):
        raise BadInput(f"earlyStopping.patience must be a positive integer, got {patience!r}")
    if not job.validation or job.validate_every <= 0:
        raise BadInput("earlyStopping needs validation: a validation split and validate_every of at least 1")


def is_main_process() -> bool:
    """Rank 0 of a data-parallel run (torchrun sets RANK), or a single process: the one that speaks
    the protocol and writes checkpoints and the model."""
    return os.environ.get("RANK", "0") == "0"


def emit(kind: str, **values: Any) -> None:
    if is_main_process():
        print(json.dumps({"tempered": kind, **values}, allow_nan=False, default=float), flush=True)


def init_distributed():
    """Joins the data-parallel group torchrun started (NCCL on GPUs, gloo on CPUs): (rank, world
    size, device). A single process gets (0, 1, cuda or cpu)."""
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return dist.get_rank(), world, torch.device("cuda", local)
    dist.init_process_group("gloo")
    return dist.get_rank(), world, torch.device("cpu")


def read_records(path: str, what: str) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record.get("text"), str):
                raise BadInput(f"{what}, line {number}: a record needs a string \"text\"")
            records.append(record)
    if not records:
        raise BadInput(f"{what} has no records")
    return records


def load_base(job: Job):
    """Model and tokenizer from a Hugging Face checkpoint directory (or a GGUF file in it)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    directory = job.base.get("dir")
    gguf_file = job.base.get("gguf_file")
    if not directory or not Path(directory).is_dir():
        raise BadInput(f"base directory {directory!r} does not exist")
    files = {p.name for p in Path(directory).iterdir()}
    if gguf_file is None and not any(n.endswith(".safetensors") or n.endswith(".bin") or n == "model.safetensors.index.json" for n in files):
        raise BadInput(f"base directory {directory} has no weights (*.safetensors, pytorch_model.bin or a GGUF file); files: {sorted(files)}")
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
    try:
        AutoConfig.from_pretrained(directory, **kwargs)
    except (ValueError, KeyError) as err:
        raise BadInput(f"base {directory}: transformers cannot read its config ({err}); an unknown architecture?") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    head = {"num_labels": len(job.labels), "id2label": dict(enumerate(job.labels)), "label2id": {label: i for i, label in enumerate(job.labels)}} if job.objective == "classify" else {}
    if job.objective == "sft":
        from .chat import ChatFormatError, require_chat_template

        try:
            require_chat_template(tokenizer, directory if not gguf_file else f"{directory}/{gguf_file}")
        except ChatFormatError as err:
            raise BadInput(str(err)) from err
    if job.objective == "mlm" and tokenizer.mask_token is None:
        raise BadInput(f"base {directory}: its tokenizer has no mask token, so it cannot be trained as a masked LM (mlm is for encoders such as BERT); use objective causal-lm for a decoder")
    auto = AutoModelForSequenceClassification if job.objective == "classify" else AutoModelForMaskedLM if job.objective == "mlm" else AutoModelForCausalLM
    if job.init == "random":
        # The ablation: the same architecture, tokenizer and training, without the pretrained weights.
        config = AutoConfig.from_pretrained(directory, **head, **kwargs)
        model = auto.from_config(config, torch_dtype=torch.float32)
        new_modules: list[str] = []
    else:
        if qlora(job):
            kwargs.update(four_bit_loading(directory))
        model, info = auto.from_pretrained(directory, torch_dtype=torch.float32, output_loading_info=True, **head, **kwargs)
        # Weights the checkpoint lacks start random (a new classification head; a pooler a sentence
        # encoder never trained): with LoRA they must train in full, or they stay random.
        new_modules = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", []) if "." in key})
    model.tempered_new_modules = new_modules
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def qlora(job: Job) -> bool:
    """QLoRA: LoRA adapters over a base held in 4-bit NF4 (bitsandbytes)."""
    return bool(job.lora) and job.lora.get("bits") == 4


def four_bit_loading(directory: str) -> dict[str, Any]:
    """from_pretrained arguments that load the base in 4-bit NF4 with double quantization and bf16
    compute, on this process's GPU. bitsandbytes' 4-bit layers need CUDA: refused at once elsewhere."""
    import torch

    if not torch.cuda.is_available():
        raise BadInput(
            f"base {directory}: lora.bits 4 (QLoRA) holds the base in 4-bit with bitsandbytes, whose 4-bit layers run on CUDA GPUs only, "
            "and this worker has none: run the stage on a GPU worker (resources: { gpu: 1 }), or remove lora.bits to train LoRA on the full-precision base"
        )
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    return {"quantization_config": config, "device_map": {"": torch.cuda.current_device()}}


# Non-reentrant activation checkpointing: it works with frozen inputs (LoRA), FSDP and autocast, and
# restores the RNG state for recomputation, so dropout draws the same masks and training is unchanged.
CHECKPOINTING = {"use_reentrant": False}


def with_checkpointing(model, job: Job):
    """The model with activation checkpointing on when the job asks (QLoRA sets it in with_lora instead)."""
    if not job.gradient_checkpointing or qlora(job):
        return model
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise BadInput(f"gradientCheckpointing: {type(model).__name__} does not support activation checkpointing in transformers; remove gradientCheckpointing")
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=CHECKPOINTING)
    return model


def with_lora(model, job: Job):
    if not job.lora:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    if qlora(job):
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=job.gradient_checkpointing, gradient_checkpointing_kwargs=CHECKPOINTING)
    task = TaskType.SEQ_CLS if job.objective == "classify" else TaskType.CAUSAL_LM if job.objective in ("causal-lm", "sft") else None
    config = LoraConfig(
        task_type=task,
        r=int(job.lora.get("rank", 8)),
        lora_alpha=float(job.lora.get("alpha", 16)),
        lora_dropout=float(job.lora.get("dropout", 0.0)),
        # None: PEFT's default modules for the architecture.
        target_modules=job.lora.get("targets") or None,
        modules_to_save=getattr(model, "tempered_new_modules", None) or None,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        given = job.lora.get("targets")
        fix = "name modules of this architecture" if given else "PEFT has no default for this architecture: set lora.targets to its projection modules"
        raise BadInput(f"LoRA targets {given!r}: {err}; {fix}") from err


class Batches:
    """The batch of step s: records s*B .. s*B+B-1 of the epoch's seeded permutation."""

    def __init__(self, records, tokenizer, job: Job, device=None, rank: int = 0, world: int = 1):
        import numpy as np

        self.device = device
        self.np = np
        self.records = records
        self.tokenizer = tokenizer
        self.job = job
        self.label_index = {label: i for i, label in enumerate(job.labels)}
        self.rank, self.world = rank, world
        self._epoch = -1
        self._order = None

    def indices(self, step: int) -> list[int]:
        n = len(self.records)
        start = step * self.job.batch_size
        out = []
        for position in range(start, start + self.job.batch_size):
            epoch, offset = divmod(position, n)
            if epoch != self._epoch:
                self._order = self.np.random.default_rng([self.job.seed, epoch]).permutation(n)
                self._epoch = epoch
            out.append(int(self._order[offset]))
        return out

    def encode(self, rows: list[dict[str, Any]], salt: int = 0):
        """Tokenized rows with their labels; `salt` (the step, or the position of a validation
        batch) seeds a masked LM's masks, so they are the same on every run and resume."""
        import torch

        windowed = "input_ids" in rows[0]  # rows are windows of long records (window_records)
        if self.job.objective == "sft":
            from .chat import ChatFormatError, encode_packed, encode_sft

            try:
                # Packed rows (pack_records) are tokenized already; validation rows are conversations.
                encoded = encode_packed(rows, self.tokenizer.pad_token_id) if "conversation_lengths" in rows[0] else encode_sft(self.tokenizer, rows, self.job.max_length)
            except ChatFormatError as err:
                raise BadInput(str(err)) from err
            return encoded.to(self.device) if self.device is not None else encoded
        if self.job.objective == "mlm":
            seed = (self.job.seed * 1_000_003 + salt) % 2**62
            if windowed:
                encoded = masked(self.tokenizer.pad({"input_ids": [r["input_ids"] for r in rows]}, return_tensors="pt"), self.tokenizer, seed)
            else:
                encoded = encode_mlm(self.tokenizer, [r["text"] for r in rows], self.job.max_length, seed)
            return encoded.to(self.device) if self.device is not None else encoded
        if windowed:
            encoded = self.tokenizer.pad({"input_ids": [r["input_ids"] for r in rows]}, return_tensors="pt")
        else:
            encoded = self.tokenizer([r["text"] for r in rows], truncation=True, max_length=self.job.max_length, padding=True, return_tensors="pt")
        if self.job.objective == "classify":
            labels = []
            for r in rows:
                if r.get("label") not in self.label_index:
                    raise BadInput(f"record {r.get('id')!r} has label {r.get('label')!r}; labels: {self.job.labels}")
                labels.append(self.label_index[r["label"]])
            encoded["labels"] = torch.tensor(labels)
        else:
            labels = encoded["input_ids"].clone()
            labels[encoded["attention_mask"] == 0] = -100
            encoded["labels"] = labels
        return encoded.to(self.device) if self.device is not None else encoded

    def batch(self, step: int):
        """Step s's batch; in a data-parallel run, this process's share of it (every world-th row),
        so the processes together compute the gradient of the same batch as one process would."""
        rows = [self.records[i] for i in self.indices(step)][self.rank :: self.world]
        return self.encode(rows, salt=step)


def batch_tokens(batch) -> int:
    """The tokens a batch reads, padding excluded: its attention mask's ones, or a packed batch's
    (which has no mask: chat.encode_packed) real positions."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    from .chat import packed_tokens

    return packed_tokens(batch["position_ids"])


def lr_lambda(job: Job):
    def schedule(step: int) -> float:
        if job.warmup_steps > 0 and step < job.warmup_steps:
            return (step + 1) / job.warmup_steps
        progress = (step - job.warmup_steps) / max(1, job.steps - job.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return schedule


def trainable(model) -> list:
    return [p for p in model.parameters() if p.requires_grad]


def save_checkpoint(directory: Path, step: int, model, optimizer, scheduler, parallel: Parallel | None = None) -> None:
    """Weights (or adapter), optimizer, scheduler, every RNG and the step; a marker file last. A
    sharded model is gathered whole first (every process calls this; rank 0 writes)."""
    import numpy as np
    import torch

    sharded = parallel is not None and parallel.sharded
    model_state = parallel.model_state(model) if sharded else None
    optimizer_state = parallel.optimizer_state(model, optimizer) if sharded else optimizer.state_dict()
    if not is_main_process():
        return
    tmp = directory.with_name(directory.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp / "model", safe_serialization=True, **({"state_dict": model_state} if sharded else {}))
    torch.save(
        {
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
        },
        tmp / "state.pt",
    )
    (tmp / "step.json").write_text(json.dumps({"step": step}))
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    tmp.rename(directory)


def load_checkpoint(directory: Path, model, optimizer, scheduler) -> int:
    """Restores a checkpoint: weights (or adapter), optimizer, scheduler and RNGs; returns its step."""
    load_weights(directory, model)
    return load_training_state(directory, model, optimizer, scheduler)


def load_weights(directory: Path, model) -> None:
    """A checkpoint's weights (or adapter) into the model, before it is sharded or wrapped."""
    from safetensors.torch import load_file

    weights = directory / "model"
    state_file = weights / ("adapter_model.safetensors" if (weights / "adapter_model.safetensors").exists() else "model.safetensors")
    if not state_file.exists():
        raise BadInput(f"checkpoint {directory} has no weights")
    saved = load_file(str(state_file))
    if (weights / "adapter_model.safetensors").exists():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, saved)
    else:
        missing, unexpected = model.load_state_dict(saved, strict=False)
        tied = set(getattr(model, "_tied_weights_keys", None) or [])
        if unexpected or [m for m in missing if m not in tied]:
            raise BadInput(f"checkpoint {directory} does not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def load_training_state(directory: Path, model, optimizer, scheduler, parallel: Parallel | None = None) -> int:
    """A checkpoint's optimizer (into the optimizer of the model as it trains: sharded, with fsdp), scheduler and RNGs; returns its step."""
    import numpy as np
    import torch

    state = torch.load(directory / "state.pt", weights_only=False)
    if parallel is not None:
        parallel.load_optimizer_state(model, optimizer, state["optimizer"])
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])
    return int(json.loads((directory / "step.json").read_text())["step"])


# Validation batches draw their masks apart from the training steps'.
VALIDATION_SALT = 1_000_000_007


def evaluate(model, batches: Batches, records, job: Job, limit_batches: int) -> dict[str, float]:
    import torch

    model.eval()
    losses, seen = [], 0
    actual: list[int] = []
    predicted: list[int] = []
    size = job.batch_size
    count = len(records) if limit_batches <= 0 else min(len(records), limit_batches * size)
    with torch.no_grad():
        for start in range(0, count, size):
            batch = batches.encode(records[start : start + size], salt=VALIDATION_SALT + start)
            out = model(**batch)
            losses.append(float(out.loss) * len(batch["labels"]))
            if job.objective == "classify":
                actual += batch["labels"].tolist()
                predicted += out.logits.argmax(-1).tolist()
            seen += len(batch["labels"])
    model.train()
    result = {"valLoss": sum(losses) / max(1, seen)}
    if job.objective == "classify":
        result["valAccuracy"] = sum(a == p for a, p in zip(actual, predicted)) / max(1, seen)
        result["valF1"] = macro_f1(actual, predicted)
    return result


def macro_f1(actual: list[int], predicted: list[int]) -> float:
    """Mean over the classes seen in labels or predictions of 2·TP / (2·TP + FP + FN): the tfjs
    engine's valF1 (activities/ml/train.ts)."""
    classes = set(actual) | set(predicted)
    if not classes:
        return math.nan

    def f1(c: int) -> float:
        tp = sum(a == c and p == c for a, p in zip(actual, predicted))
        wrong = sum((a == c) != (p == c) for a, p in zip(actual, predicted))  # FP + FN
        return 2 * tp / (2 * tp + wrong)

    return sum(f1(c) for c in classes) / len(classes)


def peak_memory_bytes(device) -> int:
    """Peak GPU memory allocated on CUDA (the seed's 显存占用); peak resident memory of this process on CPU."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# Early stopping's files: the best weights so far (beside the checkpoints, and in each of them) and its state.
BEST_WEIGHTS = "best.safetensors"
EARLY_STOPPING_STATE = "early-stopping.json"


class EarlyStopping:
    """Stops training when `metric` has not improved for `patience` validations and keeps the best
    weights: the tfjs engine's rule (activities/ml/train.ts). The best trainable weights go to disk,
    not memory (a copy of a large model would not fit beside it), and every checkpoint carries them
    with the state, so a resumed run takes the same decisions and ends with the same model. Every
    process of a data-parallel run holds the same state: rank 0's value decides for all of them."""

    def __init__(self, metric: str, patience: int, directory: Path) -> None:
        self.metric, self.patience = metric, patience
        self.best_file = directory / BEST_WEIGHTS
        self.best: float | None = None
        self.best_step = 0
        self.since_best = 0  # validations since the best one
        self.stopped_at: int | None = None

    @classmethod
    def of(cls, job: Job) -> EarlyStopping | None:
        if job.early_stopping is None:
            return None
        return cls(job.early_stopping["metric"], int(job.early_stopping["patience"]), Path(job.checkpoint_dir))

    def observe(self, step: int, metrics: dict[str, float], model, device, parallel: Parallel | None = None) -> bool:
        """Takes the validation after `step` (every process calls it; `metrics` is empty where it did
        not validate) and saves the weights when they are the best so far; whether to stop."""
        value = rank_zero_value(metrics.get(self.metric, math.nan), device)
        better = self.best is None or (value < self.best if self.metric == "valLoss" else value > self.best)
        if better and math.isfinite(value):
            self.best, self.best_step, self.since_best = value, step, 0
            save_trainable(model, self.best_file, parallel)
        else:
            self.since_best += 1
        return self.since_best >= self.patience

    def save(self, checkpoint: Path) -> None:
        """The state and the best weights into a checkpoint directory (a hard link where the disk allows)."""
        state = {"metric": self.metric, "bestStep": self.best_step, "bestMetric": self.best, "validationsSinceBest": self.since_best}
        (checkpoint / EARLY_STOPPING_STATE).write_text(json.dumps(state))
        if self.best is not None:
            place(self.best_file, checkpoint / BEST_WEIGHTS)

    def resume(self, checkpoint: Path) -> None:
        """The state a checkpoint carries (every process); rank 0 puts its best weights back where they are kept."""
        path = checkpoint / EARLY_STOPPING_STATE
        if not path.exists():
            raise BadInput(f"checkpoint {checkpoint} has no {EARLY_STOPPING_STATE}: it was written by a run without earlyStopping")
        state = json.loads(path.read_text())
        if state["metric"] != self.metric:
            raise BadInput(f"checkpoint {checkpoint} selected the best weights by {state['metric']}; this run selects by {self.metric}")
        self.best, self.best_step, self.since_best = state["bestMetric"], int(state["bestStep"]), int(state["validationsSinceBest"])
        if self.best is not None and is_main_process():
            if not (checkpoint / BEST_WEIGHTS).exists():
                raise BadInput(f"checkpoint {checkpoint} names step {self.best_step} the best but has no {BEST_WEIGHTS}")
            place(checkpoint / BEST_WEIGHTS, self.best_file)

    def restore_best(self, model, parallel: Parallel | None = None) -> None:
        """The best validation's weights back into `model` (every process calls it); none was best: the last step's stay."""
        if self.best is not None:
            load_trainable(model, self.best_file, parallel)

    def report(self, steps: int) -> dict[str, Any]:
        """As the tfjs engine names them: the step whose weights the model holds, its metric, and whether patience ran out."""
        found = self.best is not None
        return {"bestStep": self.best_step if found else steps, "bestMetric": round(self.best, 6) if found else None, "stoppedEarly": self.stopped_at is not None}


def rank_zero_value(value: float, device) -> float:
    """Rank 0's `value` in every process of a data-parallel run (rank 0 always validates); `value` in a single process."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(shared, src=0)
    return float(shared.item())


def save_trainable(model, path: Path, parallel: Parallel | None = None) -> None:
    """The trainable weights (LoRA's adapters and new head, else every weight) as one safetensors file,
    written beside `path` and renamed over it: checkpoints hold hard links to its earlier versions.
    A sharded model is gathered first (every process calls this); rank 0 writes."""
    from safetensors.torch import save_file

    names = [name for name, p in model.named_parameters() if p.requires_grad]
    if parallel is not None and parallel.sharded:
        whole = parallel.model_state(model)
        tensors = {name: whole[name] for name in names} if whole is not None else None
    else:
        tensors = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad} if is_main_process() else None
    if tensors is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def load_trainable(model, path: Path, parallel: Parallel | None = None) -> None:
    """Weights save_trainable wrote, into `model` (a sharded one takes its shards in every process; else rank 0 alone)."""
    import torch
    from safetensors.torch import load_file

    sharded = parallel is not None and parallel.sharded
    if not (sharded or is_main_process()):
        return
    saved = load_file(str(path))
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(saved) != names:
        raise BadInput(f"{path} does not fit the model's trainable weights (missing {sorted(names - set(saved))[:5]}, unexpected {sorted(set(saved) - names)[:5]})")
    if sharded:  # the root keeps its weights gathered after a forward: back to shards, so each process holds its own
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, tensor in saved.items():
            target = parameters[name]
            if sharded:  # every process takes its shard of the whole tensor
                from torch.distributed.tensor import distribute_tensor

                tensor = distribute_tensor(tensor.to(target.device_mesh.device_type), target.device_mesh, target.placements)
            target.copy_(tensor)


def place(source: Path, target: Path) -> None:
    """`source`'s bytes at `target`, replacing it at once: a hard link where the disk allows, else a copy."""
    import shutil

    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def train_steps(job: Job, model, batches: Batches, optimizer, scheduler, device, start: int, validation, loss_of, parallel: Parallel | None = None, early: EarlyStopping | None = None) -> tuple[int, float, float]:
    """Optimizer steps `start` .. `job.steps` of `model`: each over `grad_accum` micro-batches of
    `loss_of(batch)` (a dict of named loss tensors; `loss` is minimised, the others are reported),
    clipped, with a progress line per step, validation every `validate_every` steps and a
    checkpoint every `checkpoint_every`; with `early`, it stops once its metric has not improved
    for its patience, keeping the best weights on disk (`early.restore_best` puts them back).
    Returns the tokens seen, the last step's loss and the seconds spent in training steps
    (validation and checkpoints excluded: tokens/s is training's)."""
    import torch

    tokens = 0
    seconds = 0.0
    last_loss = float("nan")
    for step in range(start, job.steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in range(job.grad_accum):
            batch = batches.batch(step * job.grad_accum + micro)
            # bf16 autocast on GPU; CPU runs in float32.
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                terms = loss_of(batch)
            (terms["loss"] / job.grad_accum).backward()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / job.grad_accum
            tokens += batch_tokens(batch)
        torch.nn.utils.clip_grad_norm_(trainable(model), 1.0)
        optimizer.step()
        scheduler.step()
        last_loss = sums["loss"]
        done = step + 1
        seconds += time.perf_counter() - started
        point: dict[str, Any] = {"step": done, "totalSteps": job.steps, **{name: round(value, 6) for name, value in sums.items()}, "lr": scheduler.get_last_lr()[0], "tokensPerSec": round(tokens / max(seconds, 1e-9), 1), "peakMemoryBytes": peak_memory_bytes(device)}
        validating = bool(validation) and job.validate_every > 0 and (done % job.validate_every == 0 or done == job.steps)
        measured: dict[str, float] = {}
        if validating and (parallel.validates if parallel else is_main_process()):
            measured = evaluate(model, batches, validation, job, job.validation_batches)
            point.update({k: round(v, 6) for k, v in measured.items()})
        # Every process takes the decision (on rank 0's value), so all of them stop at the same step.
        stop = early is not None and validating and early.observe(done, measured, model, device, parallel)
        emit("progress", **point)
        if stop:
            early.stopped_at = done
            break
        if job.checkpoint_every > 0 and done % job.checkpoint_every == 0 and done < job.steps and (is_main_process() or (parallel is not None and parallel.sharded)):
            target = Path(job.checkpoint_dir) / f"step-{done:08d}"
            save_checkpoint(target, done, model, optimizer, scheduler, parallel)
            if early is not None and is_main_process():
                early.save(target)
            emit("checkpoint", step=done, dir=str(target))
    return tokens, last_loss, seconds


def window_records(records, tokenizer, job: Job) -> list[dict[str, Any]]:
    """Each record as its windows (inference.windows), each a training example with the record's label."""
    if not 0 <= job.window_overlap < job.max_length // 2:
        raise BadInput(f"windowOverlap {job.window_overlap} must be at least 0 and less than half of maxLength {job.max_length}")
    return [{**record, "input_ids": ids, "window": k} for record in records for k, ids in enumerate(windows(tokenizer, record["text"], job.max_length, job.window_overlap))]


def pack_records(records, tokenizer, job: Job) -> list[dict[str, Any]]:
    """sft conversations packed several to a row of at most max_length tokens (chat.pack_sft): the rows Batches draws from."""
    from .chat import ChatFormatError, pack_sft

    try:
        rows = pack_sft(tokenizer, records, job.max_length)
    except ChatFormatError as err:
        raise BadInput(str(err)) from err
    if not rows:
        raise BadInput(f"packing: none of the {len(records)} train conversations has two tokens or more to learn from")
    return rows


def materialize_from_model(job: Job) -> None:
    """Continuing a LoRA-only model: its base with the adapters merged, saved once as the checkpoint
    this stage starts from (in the objective it was trained for; load_base re-heads it if needed)."""
    from .predict import load_model

    merged, tokenizer = load_model(job.from_model)
    target = Path(job.checkpoint_dir).parent / "from-merged"
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    job.base = {"dir": str(target)}


def start_job(job: Job) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What every training job does first: its thread count, every RNG seeded, its records read."""
    import numpy as np
    import torch

    if job.threads > 0:
        torch.set_num_threads(job.threads)
    random.seed(job.seed)
    np.random.seed(job.seed)
    torch.manual_seed(job.seed)
    train = read_records(job.train, "the train split")
    validation = read_records(job.validation, "the validation split") if job.validation else []
    return train, validation


def run(job: Job) -> dict[str, Any]:
    import torch

    train, validation = start_job(job)
    if job.from_model:
        materialize_from_model(job)
    model, tokenizer = load_base(job)
    if job.long_records == "windows":
        train, validation = window_records(train, tokenizer, job), window_records(validation, tokenizer, job)
    if job.packing:
        train = pack_records(train, tokenizer, job)
    model = with_lora(with_checkpointing(model, job), job)
    rank, world, device = init_distributed()
    parallel = Parallel(job.parallel, rank, world, device)
    if job.batch_size % world:
        raise BadInput(f"batchSize {job.batch_size} must divide evenly among the {world} data-parallel processes (resources.gpu)")
    if parallel.sharded and qlora(job):
        raise BadInput("parallel fsdp with QLoRA (lora.bits) is not supported: bitsandbytes' 4-bit weights cannot be sharded here; use parallel ddp, or LoRA without bits")
    if not qlora(job):  # a 4-bit model is placed on its GPU as it loads, and cannot move
        model.to(device)
    model.train()
    parameters = sum(p.numel() for p in model.parameters())
    trainable_parameters = sum(p.numel() for p in trainable(model))
    if job.resume_dir:
        load_weights(Path(job.resume_dir), model)
    # The module the loss goes through: the model, DDP's wrapper, or the model sharded in place (the optimizer then holds shards).
    forward = parallel.wrap(model)
    optimizer = torch.optim.AdamW(trainable(model), lr=job.lr, weight_decay=job.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(job))
    batches = Batches(train, tokenizer, job, device, rank, world)

    early = EarlyStopping.of(job)
    start = 0
    resumed_from = None
    if job.resume_dir:
        start = load_training_state(Path(job.resume_dir), model, optimizer, scheduler, parallel)
        resumed_from = start
        if early is not None:
            early.resume(Path(job.resume_dir))

    started = time.perf_counter()
    tokens, last_loss, training_seconds = train_steps(job, model, batches, optimizer, scheduler, device, start, validation, lambda batch: {"loss": forward(**batch).loss * parallel.loss_share(batch, job.objective)}, parallel, early)
    tokens, last_loss = parallel.gather_totals(tokens, last_loss)
    if early is not None:
        early.restore_best(model, parallel)
    done = (early.stopped_at if early is not None else None) or job.steps
    final = {}
    if parallel.sharded:
        # Every process takes part in a sharded forward; the whole model is then gathered on rank 0, on the CPU.
        final = evaluate(model, batches, validation, job, 0) if validation else {}
        whole = parallel.model_state(model)
    parallel.finish()
    if not parallel.main:
        return {}

    output = Path(job.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    if parallel.sharded:
        save_gathered(job, model, whole, output)
    else:
        if job.lora and job.merge_lora:
            model = model.merge_and_unload()
        model.save_pretrained(output, safe_serialization=True)
        final = evaluate(model, batches, validation, job, 0) if validation else {}
    tokenizer.save_pretrained(output)
    elapsed = time.perf_counter() - started
    metrics = {
        "engine": "torch",
        "torch": torch.__version__,
        "device": device.type,
        "peakMemoryBytes": peak_memory_bytes(device),
        "objective": job.objective,
        "steps": done,
        "parameters": parameters,
        "trainableParameters": trainable_parameters,
        "trainableFraction": round(trainable_parameters / parameters, 4),
        "tokensPerSec": round(tokens / max(training_seconds, 1e-9), 1),
        "trainingSeconds": round(training_seconds, 3),
        "wallSeconds": round(elapsed, 3),
        "finalLoss": round(last_loss, 6) if math.isfinite(last_loss) else None,  # None: no step was taken (steps 0)
        "final": {k: round(v, 6) for k, v in final.items()},
        "adapter": bool(job.lora),
        "processes": world,
        "gradientCheckpointing": job.gradient_checkpointing,
        **({"parallel": job.parallel, "shardedUnits": parallel.units} if world > 1 else {}),
    }
    if resumed_from is not None:
        metrics["resumedFromStep"] = resumed_from
    if early is not None:
        metrics.update(early.report(done))
    if job.packing:
        from .chat import packing_metrics

        metrics.update(packing_metrics(train, job.max_length))
    emit("metrics", **metrics)
    return metrics


def save_gathered(job: Job, model, whole: dict[str, Any], output: Path) -> None:
    """Saves the whole state a sharded run gathered, as an unsharded run saves its model. Adapters to
    merge are merged in a fresh copy of the model built on the CPU (the sharded one cannot be)."""
    if not (job.lora and job.merge_lora):
        model.save_pretrained(output, safe_serialization=True, state_dict=whole)
        return
    fresh, _ = load_base(job)
    fresh = with_lora(fresh, job)
    fresh.load_state_dict(whole)
    fresh.merge_and_unload().save_pretrained(output, safe_serialization=True)


def exit_with_parent() -> None:
    """Ends this process when the worker that started it is gone (SIGKILLed: nothing stops its
    children), so a lost worker leaves no orphan training on the node."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def job_main(argv: list[str], module: str, work) -> int:
    """The entry of a tempered_torch module: one job file; bad input exits EXIT_BAD_INPUT, not retried."""
    exit_with_parent()
    if len(argv) != 2:
        print(f"usage: python -m tempered_torch.{module} <job.json>", file=sys.stderr)
        return 2
    try:
        work(argv[1])
    except BadInput as err:
        print(f"tempered_torch: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def main(argv: list[str]) -> int:
    return job_main(argv, "finetune", lambda path: run(Job.load(path)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
