#!/usr/bin/env python3
# One rank of PyTorch's DistributedDataParallel over gloo, timing whole training steps of a baton zoo
# twin (bench/pytorch_models.py) in channels_last, the peer of `baton bench --replicas R`. Started once
# per rank with MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK (bench/compare_ddp.sh does it inside each
# jobs/virtual_cluster.sh host); rank 0 prints one JSON line like baton bench's.
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_models  # noqa: E402  (the twins)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description="Time DDP (gloo) training steps of a baton zoo twin.")
    parser.add_argument("--model", default="alexnet", choices=list(pytorch_models.ZOO))
    parser.add_argument("--batch-size", type=int, default=64, help="images per rank")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dist.init_process_group("gloo")
    model, input_shape, classes = pytorch_models.build(args.model)
    model = model.to(memory_format=torch.channels_last).train()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    images = torch.randn(args.batch_size, *input_shape).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, (args.batch_size,))
    optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        optimizer.zero_grad()
        loss_fn(ddp(images), labels).backward()  # DDP averages the gradient in buckets during backward
        optimizer.step()

    median = pytorch_models.median_step_ms(step, args.iterations, args.warmup, dist.barrier)
    if dist.get_rank() == 0:
        world = dist.get_world_size()
        print(json.dumps({"model": args.model, "batch_size": args.batch_size * world, "processes": world,
                          "threads": args.threads, "torch": torch.__version__, "median_step_ms": median,
                          "images_per_sec": args.batch_size * world / (median / 1e3)}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
