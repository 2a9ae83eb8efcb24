# Writes a freshly initialised PyTorch twin's state_dict as safetensors with baton's export metadata,
# for `baton ... --init-from FILE` tests; --drop, --rename and --reshape spoil it on purpose (missing,
# unexpected and mis-shaped tensors) for the error tests. Run with /usr/bin/python3 (python3-torch).
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import baton_data  # noqa: E402
import safetensors_io  # noqa: E402
import twins  # noqa: E402


def spoil(arrays, drop, rename, reshape):
    """arrays without the `drop` keys, with OLD=NEW renames, and `reshape` keys given a leading 1."""
    for key in drop + [pair.split("=")[0] for pair in rename] + reshape:
        if key not in arrays:
            sys.exit(f"save_twin.py: no tensor '{key}' to change; the twin has {list(arrays)}")
    for key in reshape:
        arrays[key] = arrays[key].reshape(1, *arrays[key].shape)  # same values, e.g. [6] -> [1, 6]
    renames = dict(pair.split("=", 1) for pair in rename)
    return {renames.get(key, key): array for key, array in arrays.items() if key not in drop}


def main():
    parser = argparse.ArgumentParser(description="Save a fresh PyTorch twin as a baton safetensors file.")
    parser.add_argument("--model", required=True, choices=list(twins.pytorch_models.ZOO))
    parser.add_argument("--input", required=True, help="CxHxW, e.g. 1x28x28")
    parser.add_argument("--classes", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed before building the twin")
    parser.add_argument("--data-dir", help="IDX data folder whose training set gives mean and std as baton "
                                           "computes them; else mean 0 and std 1 per channel")
    parser.add_argument("--drop", action="append", default=[], metavar="KEY", help="leave tensor KEY out")
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="store OLD as NEW")
    parser.add_argument("--reshape", action="append", default=[], metavar="KEY",
                        help="store KEY with an extra leading dimension of 1")
    args = parser.parse_args()
    if any("=" not in pair for pair in args.rename):
        parser.error("--rename takes OLD=NEW")
    input_shape = twins.parse_input(args.input)
    torch.manual_seed(args.seed)
    model, _, _ = twins.pytorch_models.build(args.model, input_shape, args.classes)
    if args.data_dir:
        mean, std = baton_data.channel_statistics(baton_data.read_idx(args.data_dir, "train")[0])
    else:
        mean, std = [0.0] * input_shape[0], [1.0] * input_shape[0]
    arrays = spoil(twins.state_arrays(model), args.drop, args.rename, args.reshape)
    safetensors_io.write(args.output, arrays, twins.metadata(args.model, input_shape, args.classes, mean, std))


if __name__ == "__main__":
    main()
