#!/usr/bin/env python3
# One rank of a 2-stage torch.distributed.pipelining pipeline over gloo (GPipe or 1F1B), timing whole
# training steps of a baton zoo twin (bench/pytorch_models.py) cut at a block, the peer of baton's
# pipelines on the same cut. Started once per rank with MASTER_ADDR, MASTER_PORT, WORLD_SIZE=2, RANK
# (bench/compare_pipelines.sh); rank 0 prints one JSON line.
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_models  # noqa: E402  (the twins)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe  # noqa: E402

SCHEDULES = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}


def flat_children(model):
    """(name, module) in execution order, with each residual stage's blocks listed one by one."""
    for name, module in model.named_children():
        if name.startswith("layer"):
            yield from ((f"{name}.{i}", block) for i, block in module.named_children())
        else:
            yield name, module


class Layout(torch.nn.Module):
    """Hands a tensor on in a memory format: gloo sends and receives only contiguous NCHW."""

    def __init__(self, memory_format):
        super().__init__()
        self.memory_format = memory_format

    def forward(self, x):
        return x.contiguous(memory_format=self.memory_format)


def stages(model, cut):
    """The two stage modules: stage 0 ends by making its output contiguous, stage 1 begins by making
    it channels_last again."""
    children = list(flat_children(model))
    names = [name for name, _ in children]
    if cut not in names:
        sys.exit(f"pytorch_pipeline.py: no block '{cut}' to cut at; choose one of {', '.join(names)}")
    k = names.index(cut)
    first = [module for _, module in children[:k]] + [Layout(torch.contiguous_format)]
    second = [Layout(torch.channels_last)] + [module for _, module in children[k:]]
    return torch.nn.Sequential(*first), torch.nn.Sequential(*second)


def main():
    parser = argparse.ArgumentParser(description="Time a 2-stage torch.distributed.pipelining pipeline.")
    parser.add_argument("--model", default="resnet56", choices=list(pytorch_models.ZOO))
    parser.add_argument("--cut", default="layer2.4", help="the block stage 1 begins with")
    parser.add_argument("--schedule", default="1f1b", choices=list(SCHEDULES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--microbatches", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, input_shape, classes = pytorch_models.build(args.model)
    model.to(memory_format=torch.channels_last)
    first, second = stages(model, args.cut)
    # What crosses, given explicitly (contiguous), so the stages' buffers need no shape inference.
    microbatch = torch.randn(args.batch_size // args.microbatches, *input_shape)
    with torch.no_grad():
        boundary = torch.empty_like(first(microbatch.contiguous(memory_format=torch.channels_last)))
    boundary.requires_grad_()  # stage 1 sends its gradient back
    logits = torch.empty(microbatch.shape[0], classes)
    module = (first if rank == 0 else second).train()
    stage = PipelineStage(module, rank, 2, torch.device("cpu"),
                          input_args=microbatch if rank == 0 else boundary,
                          output_args=boundary if rank == 0 else logits)
    schedule = SCHEDULES[args.schedule](stage, n_microbatches=args.microbatches,
                                        loss_fn=torch.nn.CrossEntropyLoss())
    images = torch.randn(args.batch_size, *input_shape).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (args.batch_size,))
    optimizer = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step():
        if rank == 0:
            schedule.step(images)
        else:
            schedule.step(target=labels, losses=[])
        optimizer.step()
        optimizer.zero_grad()

    median = pytorch_models.median_step_ms(step, args.iterations, args.warmup, dist.barrier)
    if rank == 0:
        print(json.dumps({"model": args.model, "schedule": args.schedule, "cut": args.cut,
                          "batch_size": args.batch_size, "microbatches": args.microbatches,
                          "torch": torch.__version__, "median_step_ms": median,
                          "images_per_sec": args.batch_size / (median / 1e3)}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
