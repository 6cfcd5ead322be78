"""Data-parallel launch of a tempered_torch module: torchrun on this node, one process per device.

    python -m tempered_torch.launch <processes> <module> <job.json>

Runs `torch.distributed.run --standalone --nproc-per-node <processes> -m tempered_torch.<module>
<job.json>` in this process (PyTorch's own launcher), after arranging, as every tempered_torch
module does, to end when the worker that started it is gone: the training processes watch this
one in turn, so a lost worker leaves nothing running. Rank 0 alone speaks the protocol.
"""

from __future__ import annotations

import sys

from .finetune import EXIT_BAD_INPUT, exit_with_parent

MODULES = ("finetune",)


def main(argv: list[str]) -> int:
    if len(argv) != 4 or not argv[1].isdigit() or argv[2] not in MODULES:
        print(f"usage: python -m tempered_torch.launch <processes> <{'|'.join(MODULES)}> <job.json>", file=sys.stderr)
        return 2
    exit_with_parent()
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={int(argv[1])}", "-m", f"tempered_torch.{argv[2]}", argv[3]])
    except ChildFailedError as err:
        # Bad input in any process is bad input for the stage: not retried.
        return EXIT_BAD_INPUT if any(f.exitcode == EXIT_BAD_INPUT for f in err.failures.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
