"""Tempered's torch engine: PyTorch + Hugging Face transformers/PEFT, driven by the TypeScript side.

Run inside the environment built from ``python/requirements.lock`` (``tempered setup python``), with
``python/`` on ``PYTHONPATH``. Nothing here downloads from a hub: models come from directories,
the store, or installed packages (:mod:`tempered_torch.packaged_models`).
"""
