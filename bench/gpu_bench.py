#!/usr/bin/env python3
# GPU training steps: baton's cuda backend against eager PyTorch on the same GPU (the same model
# definitions, bench/pytorch_models.py; PyTorch's cuDNN autotuning on; TF32 off in both unless
# --tf32), alternating runs, medians; then what the CPU<->GPU messages of a 2-stage pipeline cost.
# Usage: python3 bench/gpu_bench.py [--models resnet56 vgg16] [--batch-size 128] [--rounds 3]
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    parser = argparse.ArgumentParser(description="Time GPU training steps of baton and of eager PyTorch.")
    parser.add_argument("--baton", default=os.environ.get("BATON", os.path.join(HERE, "..", "build", "runtime", "baton")))
    parser.add_argument("--models", nargs="+", default=["resnet56", "vgg16"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of baton and PyTorch per model")
    parser.add_argument("--iterations", type=int, default=20, help="timed steps per run (each run reports its median)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores in both")
    parser.add_argument("--output", help="also write the results as JSON here")
    return parser.parse_args()


def json_line(command, env=None):
    """Runs a command and returns the JSON object on the last line it printed."""
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"gpu_bench.py: {' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def baton_step_ms(args, model, env, *extra):
    command = [args.baton, "bench", "--backend", "cuda", "--model", model, "--batch-size", str(args.batch_size),
               "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--repeats", "1", *extra]
    return json_line(command, env)["median_step_ms"]


def pytorch_step_ms(args, model):
    command = [sys.executable, os.path.join(HERE, "pytorch_models.py"), "--device", "cuda", "--model", model,
               "--batch-size", str(args.batch_size), "--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    line = json_line(command + (["--tf32"] if args.tf32 else []))
    return line["median_step_ms"], line["torch"]


def main():
    args = parse_args()
    env = dict(os.environ, BATON_CUDA_TF32="1" if args.tf32 else "0")
    rows, torch_version = [], None
    for model in args.models:
        baton_ms, torch_ms = [], []
        for round_ in range(args.rounds):
            print(f"  {model}: round {round_ + 1}/{args.rounds}", file=sys.stderr)
            baton_ms.append(baton_step_ms(args, model, env))
            ms, torch_version = pytorch_step_ms(args, model)
            torch_ms.append(ms)
        b, p = statistics.median(baton_ms), statistics.median(torch_ms)
        rows.append({"model": model, "baton_ms": b, "pytorch_ms": p, "ratio": b / p})
    # A 2-stage pipeline of the first model emulated on this GPU: every boundary tensor crosses to
    # the host and back (forward activations, backward gradients), which one stage never does.
    model = args.models[0]
    whole = statistics.median(baton_step_ms(args, model, env) for _ in range(args.rounds))
    piped = statistics.median(baton_step_ms(args, model, env, "--stages", "2", "--pipeline", "gpipe", "--emulate")
                              for _ in range(args.rounds))
    print(f"\nGPU training steps, batch {args.batch_size}, fp32, TF32 {'on' if args.tf32 else 'off'}; "
          f"PyTorch {torch_version} eager with cuDNN autotuning; median of {args.rounds} alternating runs "
          f"of {args.iterations} steps")
    print(f"{'model':<10} {'baton ms':>10} {'PyTorch ms':>11} {'baton/PyTorch':>14}")
    for r in rows:
        print(f"{r['model']:<10} {r['baton_ms']:>10.2f} {r['pytorch_ms']:>11.2f} {r['ratio']:>14.2f}")
    print(f"\n{model}, 2 stages emulated on one GPU (GPipe, 1 microbatch): {piped:.2f} ms per step against "
          f"{whole:.2f} ms in one stage: the boundary's copies through the host add {piped - whole:.2f} ms")
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"rows": rows, "pipeline_ms": piped, "one_stage_ms": whole, "torch": torch_version,
                       "batch_size": args.batch_size, "tf32": args.tf32}, f)


if __name__ == "__main__":
    main()
