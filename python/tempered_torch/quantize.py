"""The torch engine's int8 quantization: dynamic int8 for CPU inference.

    python -m tempered_torch.quantize job.json

Every `nn.Linear` becomes a dynamically quantized int8 layer (PyTorch's `quantize_dynamic`, fbgemm
kernels: int8 weights per output channel, activations quantized per batch at run time), so matrix
products run in int8 and CPU inference gets faster, not only smaller; embedding tables are stored
as int8 per row and dequantized at load (lookups gain nothing from int8 compute). The model is
stored as a Hugging Face directory — config.json, tokenizer files — whose weights are
`model.int8.safetensors` (int8 tensors with their scales) plus `tempered-quantization.json`;
`load_quantized` rebuilds it. Plain `from_pretrained` cannot load int8 layers of this kind.

Float and int8 models score the same test records (`eval/float.jsonl`, `eval/int8.jsonl`) and their
latency is measured side by side in alternating rounds.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from .finetune import BadInput, emit, job_main, read_records
from .inference import latency_ms, score_records

WEIGHTS = "model.int8.safetensors"
MANIFEST = "tempered-quantization.json"
SCHEME = "dynamic-int8"


def quantize_dynamic_int8(model):
    """A copy of `model` with every nn.Linear dynamically quantized to int8, weights per channel."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if "fbgemm" not in torch.backends.quantized.supported_engines and "x86" not in torch.backends.quantized.supported_engines:
        raise BadInput(f"this PyTorch build has no int8 CPU kernels (engines: {torch.backends.quantized.supported_engines}); quantize on an x86-64 worker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices (torchao is its successor)
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=False)


def quantized_linears(model) -> dict[str, Any]:
    return {name: m for name, m in model.named_modules() if type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")}


def save_quantized(model, quantized, tokenizer, out: Path, manifest: dict[str, Any]) -> None:
    """int8 Linear weights (with per-channel scales), int8 embedding rows (with per-row scales),
    every other tensor as float32, in one safetensors file."""
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    linears = quantized_linears(quantized)
    for name, module in linears.items():
        weight = module.weight()
        tensors[f"{name}.weight.int8"] = weight.int_repr().contiguous()
        tensors[f"{name}.weight.scale"] = weight.q_per_channel_scales().float().contiguous()
        bias = module.bias()
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().float().contiguous()
    embeddings = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Embedding)]
    for name in embeddings:
        weight = dict(model.named_modules())[name].weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
        tensors[f"{name}.weight.int8"] = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        tensors[f"{name}.weight.scale"] = scale.contiguous()
    covered = {f"{name}.weight" for name in [*linears, *embeddings]} | {f"{name}.bias" for name in linears}
    seen_storage: set[int] = set()
    for key, value in model.state_dict().items():
        if key in covered:
            continue
        pointer = value.data_ptr()
        if pointer in seen_storage:
            continue  # a tied weight (e.g. an LM head sharing the embedding) is restored by tying
        seen_storage.add(pointer)
        tensors[key] = value.detach().float().contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS), metadata={"format": "pt", "tempered": SCHEME})
    model.config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MANIFEST).write_text(json.dumps({**manifest, "scheme": SCHEME, "linear": sorted(linears), "embeddings": embeddings}, indent=2), encoding="utf-8")


def load_quantized(model_dir: str, objective: str, labels: list[str]):
    """The int8 model stored by `save_quantized`, on CPU, in eval mode."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    directory = Path(model_dir)
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("scheme") != SCHEME:
        raise BadInput(f"{directory / MANIFEST}: unknown scheme {manifest.get('scheme')!r}; this engine reads {SCHEME}")
    config = AutoConfig.from_pretrained(directory)
    auto = AutoModelForSequenceClassification if objective == "classify" else AutoModelForMaskedLM if objective == "mlm" else AutoModelForCausalLM
    model = auto.from_config(config, dtype=torch.float32)
    tensors = load_file(str(directory / WEIGHTS))
    modules = dict(model.named_modules())
    for name in manifest["embeddings"]:
        modules[name].weight.data.copy_(tensors.pop(f"{name}.weight.int8").float() * tensors.pop(f"{name}.weight.scale")[:, None])
    linear_weights = {name: (tensors.pop(f"{name}.weight.int8"), tensors.pop(f"{name}.weight.scale"), tensors.pop(f"{name}.bias", None)) for name in manifest["linear"]}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    restored = {*manifest["embeddings"], *manifest["linear"]}
    absent = [key for key in missing if key.rsplit(".", 1)[0] not in restored and key not in (getattr(model, "_tied_weights_keys", None) or [])]
    if unexpected or absent:
        raise BadInput(f"{directory / WEIGHTS} does not fit its config (missing {absent[:5]}, unexpected {unexpected[:5]})")
    model.tie_weights()
    model.eval()
    quantized = quantize_dynamic_int8(model)
    for name, module in quantized_linears(quantized).items():
        int8, scale, bias = linear_weights[name]
        weight = torch._make_per_channel_quantized_tensor(int8, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0)
        module.set_weight_bias(weight, bias)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return quantized, tokenizer


def file_bytes(directory: Path, names) -> int:
    return sum((directory / n).stat().st_size for n in names if (directory / n).exists())


def run(job: dict[str, Any]) -> None:
    import torch

    from .predict import load_model

    if job.get("threads", 0) > 0:
        torch.set_num_threads(job["threads"])
    float_model, tokenizer = load_model(job)
    float_model.to("cpu").eval()
    objective, labels, max_length = job["objective"], job.get("labels", []), int(job.get("max_length", 128))
    out = Path(job["out_dir"])
    emit("progress", phase="quantizing")
    quantized = quantize_dynamic_int8(float_model)
    save_quantized(float_model, quantized, tokenizer, out, {"objective": objective, "labels": labels})
    # Measured on the model as it loads back, so evaluation sees what was measured here.
    int8_model, _ = load_quantized(str(out), objective, labels)
    bytes_before = sum(p.numel() * p.element_size() for p in float_model.state_dict().values())
    metrics: dict[str, Any] = {"torch": torch.__version__, "bytesBefore": bytes_before, "bytesAfter": file_bytes(out, [WEIGHTS]), "linearLayers": len(quantized_linears(int8_model)), "quantizedEngine": torch.backends.quantized.engine}
    test = job.get("test")
    if test:
        records = read_records(test, "the test records")
        eval_dir = Path(job["eval_dir"])
        eval_dir.mkdir(parents=True, exist_ok=True)
        for name, model in (("float", float_model), ("int8", int8_model)):
            emit("progress", phase=f"scoring the test records ({name})", total=len(records))
            rows = score_records(model, tokenizer, records, objective, labels, max_length, window_overlap=job.get("window_overlap"))
            (eval_dir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        emit("progress", phase="measuring latency")
        timing = latency_ms({"float": float_model, "int8": int8_model}, tokenizer, records[:64], objective, labels, max_length, window_overlap=job.get("window_overlap"))
        metrics.update({"latencyBeforeMs": round(timing["float"], 4), "latencyAfterMs": round(timing["int8"], 4), "latencyRecords": min(64, len(records)), "threads": torch.get_num_threads()})
    emit("metrics", **metrics)


def main(argv: list[str]) -> int:
    return job_main(argv, "quantize", lambda path: run(json.loads(Path(path).read_text(encoding="utf-8"))))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
