"""How a training job's processes share the work (torchrun started them; `init_distributed` joined them).

- one process: the model as it is;
- `ddp`: every process holds the whole model and DDP averages the gradients in backward;
- `fsdp`: PyTorch's fully sharded data parallel (FSDP2, `fully_shard`): every parameter, gradient
  and optimizer state is split across the processes, each transformer block (the model's
  `_no_split_modules`) gathered only while it computes, so a model that does not fit one GPU trains
  on several. Every process takes part in each forward, so all of them validate; checkpoints and
  the final model are gathered whole on rank 0, on the CPU, and stored as a plain checkpoint would be.

Either way each process takes its share of every batch, so the run computes the training one
process would.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("ddp", "fsdp")


class Parallel:
    def __init__(self, strategy: str, rank: int, world: int, device) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"data-parallel strategy {strategy!r} is not one of {STRATEGIES}")
        self.strategy, self.rank, self.world, self.device = strategy, rank, world, device
        self.units = 0

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp" and self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def validates(self) -> bool:
        """Whether this process runs validation: rank 0, or every process of a sharded model (a forward gathers from all)."""
        return self.main or self.sharded

    def wrap(self, model):
        """The module to call for the training loss: DDP's wrapper, or the model sharded in place."""
        if self.world == 1:
            return model
        if self.sharded:
            self._shard(model)
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _shard(self, model) -> None:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(self.device.type, (self.world,))
        # Each transformer block its own unit (the blocks transformers' device maps never split); the rest with the root.
        blocks = set(getattr(model, "_no_split_modules", None) or [])
        for module in list(model.modules()):
            if module is not model and type(module).__name__ in blocks:
                fully_shard(module, mesh=mesh)
                self.units += 1
        fully_shard(model, mesh=mesh)
        self.units += 1

    def model_state(self, model) -> dict[str, Any] | None:
        """The whole model's state on rank 0, on the CPU (a collective: every process calls it); None elsewhere."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if self.main else None

    def optimizer_state(self, model, optimizer) -> dict[str, Any] | None:
        """The optimizer's whole state, keyed by parameter name, on rank 0 (a collective with a sharded model)."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if self.main else None

    def load_optimizer_state(self, model, optimizer, state: dict[str, Any]) -> None:
        if not self.sharded:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def loss_share(self, batch, objective: str):
        """The factor that makes this process's mean loss its part of the whole batch's mean: its
        loss-bearing tokens times the world over all processes' tokens (1 with one process). The
        gradients the processes average are then those of the batch's mean over every token, as one
        process computes it, even when the processes' shares hold different numbers of tokens."""
        if self.world == 1:
            return 1.0
        import torch.distributed as dist

        labels = batch["labels"]
        if objective in ("causal-lm", "sft"):
            local = (labels[..., 1:] != -100).sum()  # the model predicts each label from the tokens before it
        elif objective == "mlm":
            local = (labels != -100).sum()
        else:
            local = labels.new_tensor(labels.shape[0])
        local = local.float()
        total = local.clone()
        dist.all_reduce(total)
        return local * self.world / total.clamp(min=1)

    def gather_totals(self, tokens: int, last_loss: float) -> tuple[int, float]:
        """Tokens of every process, and the last loss as the batch's (each process saw its share)."""
        if self.world == 1:
            return tokens, last_loss
        import torch
        import torch.distributed as dist

        totals = torch.tensor([float(tokens), last_loss], device=self.device)
        dist.all_reduce(totals)
        return int(totals[0]), float(totals[1]) / self.world

    def finish(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
