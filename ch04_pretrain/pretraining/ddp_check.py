"""Check that data-parallel training is ordinary training on a bigger batch.

Run it as `python -m ch04_pretrain.pretraining.ddp_check`.

N processes (gloo backend, CPU, 127.0.0.1) each take their own micro-batches,
accumulate gradients over them with `no_sync` (no exchange), exchange once on
the last micro-batch (DDP averages the gradients), and update. A single process
then takes all the micro-batches as one batch and updates once. The weights
must agree to float32 rounding, and the gradient exchange must have happened
on the last micro-batch only.

Then the N processes run the real trainer for a few steps on a prepared folder
(when one is given), exercising the distributed paths of `train`: the shared
stop/NaN decision, rank-0 logging and checkpoints, every process's data
position gathered into the checkpoint.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from ch03_gpt import GPT, GPTConfig, configure_optimizer
from ch03_gpt.checkpoint import model_state, write_weights
from coursekit import CourseParser, command_line, run_cli
from coursekit.numbers import int_in

from .trainer import forward_backward, optimizer_step

CFG = GPTConfig(vocab_size=97, block_size=16, n_layer=2, n_head=2, n_embd=32)
MICRO_BATCH, ACCUM = 2, 2


def _batches(world_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """world_size x ACCUM micro-batches, the same in every process (each takes its own share)."""
    g = torch.Generator().manual_seed(0)
    data = torch.randint(CFG.vocab_size, (world_size * ACCUM, MICRO_BATCH, CFG.block_size + 1), generator=g)
    return [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]


def _fresh() -> tuple[GPT, torch.optim.Optimizer]:
    torch.manual_seed(1)
    model = GPT(CFG)
    return model, configure_optimizer(model, lr=1e-2)


def _worker(rank: int, world_size: int, port: int, out: str, data_dir: str | None) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model, optimizer = _fresh()
        ddp = DistributedDataParallel(model)
        exchanges = []  # the index of the micro-batch whose backward pass triggered each gradient exchange
        micro = {"i": -1}

        def counting_hook(state, bucket):
            exchanges.append(micro["i"])
            work = dist.all_reduce(bucket.buffer().div_(world_size), async_op=True)
            return work.get_future().then(lambda f: f.value()[0])

        ddp.register_comm_hook(None, counting_hook)
        mine = _batches(world_size)[rank * ACCUM:(rank + 1) * ACCUM]
        original_forward = ddp.forward

        def forward(*args, **kwargs):  # count micro-batches as forward_backward feeds them
            micro["i"] += 1
            return original_forward(*args, **kwargs)

        ddp.forward = forward
        forward_backward(ddp, mine, "cpu", "float32")
        optimizer_step(ddp, optimizer, grad_clip=1.0)
        if rank == 0:
            write_weights(model_state(model), f"{out}/ddp.safetensors")
            Path(f"{out}/exchanges.txt").write_text(" ".join(map(str, exchanges)))
        if data_dir is not None:
            from ..data_pipeline.bpe import VOCAB_SIZE
            from .settings import TrainSettings
            from .trainer import pretrain
            model = GPTConfig(vocab_size=VOCAB_SIZE, block_size=16, n_layer=1, n_head=2, n_embd=32)
            settings = TrainSettings(model=model, batch_size=2, grad_accum=world_size * 2, max_steps=3,
                                     eval_interval=2, eval_iters=2, log_interval=1, dtype="float32", warmup=1)
            summary = pretrain(settings, data_dir, f"{out}/run", device="cpu", peak_flops=1e11, progress=False,
                            log=lambda *a: None)
            if rank == 0:
                Path(f"{out}/train_steps.txt").write_text(str(summary["steps"]))
        # Leave together: a process that tears down its gloo connections while its peer is still
        # sending can abort (SIGABRT) instead of exiting cleanly.
        del ddp
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(world_size: int = 2, data_dir: str | Path | None = None, out: str | Path | None = None) -> dict:
    """Run the comparison; returns the largest weight difference, the exchanges seen by rank 0, and the
    run folder of the distributed `train` (when `data_dir` is given)."""
    out = Path(out or tempfile.mkdtemp(prefix="ddp_check_"))
    out.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(world_size, _free_port(), str(out), str(data_dir) if data_dir else None),
             nprocs=world_size, join=True)
    model, optimizer = _fresh()
    batches = _batches(world_size)
    big = (torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
    forward_backward(model, [big], "cpu", "float32")
    optimizer_step(model, optimizer, grad_clip=1.0)
    ddp_state = load_file(str(out / "ddp.safetensors"))
    diff = max((ddp_state[k] - v).abs().max().item() for k, v in model.state_dict().items() if k in ddp_state)
    changed = max((ddp_state[k] - v).abs().max().item() for k, v in _fresh()[0].state_dict().items() if k in ddp_state)
    exchanges = [int(i) for i in (out / "exchanges.txt").read_text().split()]
    steps = int((out / "train_steps.txt").read_text()) if data_dir else None
    return {"max_difference": diff, "max_update": changed, "exchanges_at_micro_batch": exchanges,
            "micro_batches": ACCUM, "run": out / "run" if data_dir else None, "train_steps": steps}


def build_parser() -> argparse.ArgumentParser:
    p = CourseParser(prog="python -m ch04_pretrain.pretraining.ddp_check", description=__doc__.split("\n")[0])
    p.add_argument("--processes", type=int_in(1, 64), default=2,
                   help="processes of the distributed run, 1 to 64 (default: %(default)s)")
    p.add_argument("--data", help="a prepared folder: also run the trainer for 3 steps with DDP")
    p.set_defaults(run=run_check)
    return p


main = command_line(build_parser)  # parse, then run the command chosen


def run_check(args: argparse.Namespace) -> None:
    r = check(args.processes, args.data)
    print(f"{args.processes} processes x {ACCUM} micro-batches of {MICRO_BATCH} vs 1 process, 1 batch of "
          f"{args.processes * ACCUM * MICRO_BATCH}: largest weight difference {r['max_difference']:.1e} "
          f"(the step itself moved weights by up to {r['max_update']:.1e})")
    print(f"gradients exchanged during micro-batch(es) {sorted(set(r['exchanges_at_micro_batch']))} "
          f"of 0..{ACCUM - 1}")


if __name__ == "__main__":
    run_cli(main)
