# Checks a `baton export` safetensors file against PyTorch: loads it strictly into the twin its
# metadata names, evaluates the Fashion-MNIST/MNIST test set normalised as baton does, and fails
# when the accuracy is not the one baton reported. Run with /usr/bin/python3 (python3-torch).
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import baton_data  # noqa: E402
import safetensors_io  # noqa: E402
import twins  # noqa: E402


def accuracy(model, images, labels, batch_size=500):
    """Share of images whose highest logit is the label, in eval mode."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(torch.from_numpy(images[start:start + batch_size]))
            correct += int((logits.argmax(1) == torch.from_numpy(labels[start:start + batch_size])).sum())
    return correct / len(images)


def main():
    parser = argparse.ArgumentParser(description="Check a baton export against its PyTorch twin.")
    parser.add_argument("--export", required=True, help="safetensors file written by baton export")
    parser.add_argument("--data-dir", required=True, help="folder with t10k-images/labels-idx*-ubyte[.gz]")
    parser.add_argument("--expect-accuracy", type=float, required=True, help="test accuracy baton reported")
    parser.add_argument("--tolerance", type=float, default=0.001)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        arrays, meta = safetensors_io.read(args.export)
        model, input_shape, mean, std = twins.twin_for(meta)
        twins.load_arrays(model, arrays)
    except (ValueError, RuntimeError) as error:  # malformed file, bad metadata, missing/extra/mis-shaped tensors
        sys.exit(f"check_export.py: {args.export} does not load into its PyTorch twin: {error}")
    pixels, labels = baton_data.read_idx(args.data_dir, "t10k")
    if pixels.shape[1:] != input_shape:
        sys.exit(f"check_export.py: the test images are {pixels.shape[1:]} but the model was exported for "
                 f"{meta['input']}")
    value = accuracy(model, baton_data.normalise(pixels, mean, std), labels)
    print(json.dumps({"accuracy": value, "expected": args.expect_accuracy, "images": len(labels)}))
    if abs(value - args.expect_accuracy) > args.tolerance + 1e-12:  # 0.7976 - 0.7966 is 0.0010000000000000009
        sys.exit(f"check_export.py: accuracy {value} differs from the expected {args.expect_accuracy} "
                 f"by more than {args.tolerance}")


if __name__ == "__main__":
    main()
