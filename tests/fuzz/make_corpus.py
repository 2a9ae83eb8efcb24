#!/usr/bin/env python3
"""Writes the seed corpora and dictionaries of the libFuzzer targets in tests/fuzz.

    python3 tests/fuzz/make_corpus.py          # rewrites tests/fuzz/corpus/<target>/ and tests/fuzz/*.dict

Each seed is a small valid input in the format the target's header comment describes (a flags byte
and the file for the data readers, argument lines and INI text for the CLI, whole files for the
checkpoint readers). The output is deterministic (gzip without timestamps), so rerunning it changes
nothing unless this script or the CLI's option list changed. Standard library only.
"""
import gzip
import json
import pathlib
import re
import shutil
import struct
import zlib

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"

IDX_IMAGES = 0x00000803
IDX_LABELS = 0x00000801


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def idx_images(count: int, rows: int, cols: int) -> bytes:
    header = struct.pack(">4I", IDX_IMAGES, count, rows, cols)
    return header + bytes((i * 37 + 11) % 256 for i in range(count * rows * cols))


def idx_labels(labels) -> bytes:
    return struct.pack(">2I", IDX_LABELS, len(labels)) + bytes(labels)


def cifar_records(records: int) -> bytes:
    out = bytearray()
    for r in range(records):
        out.append((r * 3) % 10)
        out += bytes((r * 13 + p * 7) % 256 for p in range(3072))
    return bytes(out)


def safetensors(tensors, metadata=None) -> bytes:
    """tensors: list of (name, dtype 'F32'|'I64', shape, values)."""
    header, data = {}, bytearray()
    for name, dtype, shape, values in tensors:
        raw = struct.pack("<%d%s" % (len(values), "f" if dtype == "F32" else "q"), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    return safetensors_header(json.dumps(header, separators=(",", ":")).encode()) + bytes(data)


def safetensors_header(text: bytes) -> bytes:
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text


def idx_seeds():
    labels_magic = struct.pack(">I", IDX_LABELS)
    pairs = {
        "plain_2x4x5": (0, idx_images(2, 4, 5), idx_labels([7, 1])),
        "gzip_here_2x4x5": (3, idx_images(2, 4, 5), idx_labels([3, 9])),
        "load_data_plain": (4, idx_images(3, 4, 5), idx_labels([0, 5, 9])),
        "load_data_gzip": (7, idx_images(1, 28, 28), idx_labels([4])),
        "one_28x28": (0, idx_images(1, 28, 28), idx_labels([2])),
        # The file itself gzipped (a real download's .gz), labels plain.
        "gzip_in_input": (0, gz(idx_images(2, 3, 3)), idx_labels([1, 2])),
        "truncated_images": (0, idx_images(2, 4, 5)[:-3], idx_labels([1, 2])),
    }
    seeds = {}
    for name, (flags, images, labels) in pairs.items():
        # The target splits at the first label magic after the images' own: there must be none inside.
        assert images.find(labels_magic, 4) < 0, name
        seeds[name] = bytes([flags]) + images + labels
    return seeds


def cifar_seeds():
    return {
        "one_record": b"\x00" + cifar_records(1),
        "two_records_gzip_here": b"\x01" + cifar_records(2),
        "load_data": b"\x02" + cifar_records(1),
        "twice": b"\x04" + cifar_records(1),
        "gzip_in_input": b"\x00" + gz(cifar_records(2)),
        "short": b"\x00" + cifar_records(1)[:-1],
    }


def cli_seeds():
    lines = {
        "train_synthetic": "train\n--dataset\nsynthetic\n--epochs\n1\n--train-size\n64\n--test-size\n16",
        "train_shape": "train\n--dataset\nsynthetic\n--input-shape\n3x32x32\n--classes\n10\n--model\nresnet20",
        "train_parallel": "train\n--stages\n4\n--pipeline\nstale\n--emulate\n--microbatches\n2\n--partition\nconv2",
        "train_schedule": "train\n--lr-schedule\nstep\n--lr-milestones\n5,8\n--lr-gamma\n0.1\n--warmup-epochs\n1",
        "train_checkpoints": "train\n--checkpoint-dir\nckpt\n--checkpoint-every\n10\n--keep-checkpoints\n3\n--resume",
        "train_dp": "train\n--replicas\n2\n--dp\ndelayed\n--bucket-mb\n1.5\n--split-backward",
        "train_help": "train\n--help",
        "bench": "bench\n--model\nresnet20\n--batch-size\n32\n--iterations\n2\n--warmup\n1\n--measure\nstep",
        "schedule": "schedule\n--stages\n4\n--pipeline\ngpipe\n--microbatches\n4\n--steps\n2",
        "export": "export\nckpt\n--output\nmodel.safetensors",
        "models": "models",
        "version": "--version",
        "help": "--help",
        "ini_inline": "train\x00model = lenet5\nepochs = 2\nbatch-size = 32\n# comment\n[section]\n",
        # Regressions (issue 12): Boost.Program_options 1.74 looped for ever formatting the error for an
        # option name holding one of its message placeholders; -timeout turns a return of it into a finding.
        "placeholder_option": "train\n--x%canonical_option%",
        "placeholder_ini_key": "train\x00x%original_token% = 1\n",
    }
    seeds = {name: text.encode() for name, text in lines.items()}
    for ini in sorted((REPO / "jobs" / "configs").glob("*.ini")):
        seeds["ini_" + ini.stem] = b"train\x00" + ini.read_bytes()
    return seeds


def safetensors_seeds():
    return {
        "f32_and_i64": safetensors([("conv1.weight", "F32", [2, 3], [0.5, -1, 2, 3, 4, 5]),
                                     ("bn.num_batches_tracked", "I64", [], [7])],
                                    {"format": "pt", "baton": "1"}),
        "scalar_f32": safetensors([("w", "F32", [1], [1.0])]),
        "empty_tensor": safetensors([("e", "F32", [0, 4], [])]),
        "no_tensors": safetensors([], {"k": "v"}),
        # Fuzz finding: a dimension too large for 64 bits, which nlohmann reads as a float.
        "finding_float_shape": safetensors_header(
            b'{"e":{"dtype":"F32","shape":[0,92233720368547758070,0],"data_offsets":[0,0]}}'),
        # Fuzz finding: dimensions whose product overflows 64 bits before the zero that empties them.
        "finding_shape_overflow": safetensors_header(
            b'{"e":{"dtype":"F32","shape":[3220,93720368547758070,0],"data_offsets":[0,0]}}'),
    }


def manifest_seeds():
    manifest = {
        "format": "baton-checkpoint", "version": 1, "update": 12, "epoch": 1,
        "model": "lenet5", "input": [1, 28, 28], "classes": 10,
        "parallel": {"stages": 2, "replicas": 1, "microbatches": 1},
        "normalization": {"mean": [0.286], "std": [0.353]},
        "files": [
            {"name": "stage0.safetensors", "kind": "weights", "replica": 0, "bytes": 1234, "crc32": 305419896,
             "tensors": ["conv1.weight", "conv1.bias"]},
            {"name": "stage0.momentum.safetensors", "kind": "momentum", "replica": 0, "bytes": 1200, "crc32": 1},
        ],
    }
    return {
        "whole": json.dumps(manifest, indent=1).encode() + b"\n",
        "minimal": json.dumps({"format": "baton-checkpoint", "version": 1, "files": []}).encode(),
        "wrong_version": json.dumps({"format": "baton-checkpoint", "version": 2}).encode(),
    }


def cli_dictionary():
    """Every long option of runtime/app/cli.cpp, as a flag and as an INI key, and the choice values."""
    source = (REPO / "runtime" / "app" / "cli.cpp").read_text()
    names = sorted(set(re.findall(r'\(\s*"([a-z][a-z0-9-]+)(?:,[a-z])?"\s*,', source)))
    entries = []
    for name in names:
        entries += ["--" + name, name + " = "]
    entries += ["train", "bench", "schedule", "export", "models", "--version", "--help", "-h",
                "synthetic", "fashion-mnist", "mnist", "cifar10", "lenet5", "resnet20", "alexnet", "vgg16",
                "none", "gpipe", "pipedream", "stale", "hybrid", "sync", "overlap", "delayed", "sharded",
                "lr-scale", "constant", "step", "cosine", "cpu", "reference", "thread", "poll", "flops", "time",
                "on", "off", "true", "false", "3x32x32", "1x28x28", "5,8", "0", "-1", "1e300", "nan", "inf",
                "9223372036854775807", b"\x00", b"\n", "[", "]", "#", "="]
    return entries


def write_dictionary(path: pathlib.Path, entries, comment: str):
    """libFuzzer's format: one quoted entry a line, bytes other than printable ASCII as \\xHH."""
    lines = ["# " + comment, "# Written by tests/fuzz/make_corpus.py."]
    for entry in entries:
        raw = entry.encode() if isinstance(entry, str) else entry
        lines.append('"%s"' % "".join(chr(b) if 0x20 <= b <= 0x7e and b not in b'"\\' else "\\x%02x" % b
                                        for b in raw))
    path.write_text("\n".join(lines) + "\n")


def main():
    corpora = {
        "fuzz_idx": idx_seeds(),
        "fuzz_cifar": cifar_seeds(),
        "fuzz_cli": cli_seeds(),
        "fuzz_safetensors": safetensors_seeds(),
        "fuzz_manifest": manifest_seeds(),
    }
    for target, seeds in corpora.items():
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in sorted(seeds.items()):
            (folder / name).write_bytes(data)
        print("%s: %d seeds, %d bytes" % (folder.relative_to(REPO), len(seeds), sum(map(len, seeds.values()))))
    write_dictionary(HERE / "fuzz_idx.dict", [struct.pack(">I", IDX_IMAGES), struct.pack(">I", IDX_LABELS),
                                              b"\x1f\x8b\x08\x00", struct.pack(">I", 28),
                                              struct.pack(">I", 32768), struct.pack(">I", 0xFFFFFFFF)],
                     "IDX magic numbers, gzip's, sizes 28 and 32768, 2^32-1")
    write_dictionary(HERE / "fuzz_cifar.dict", [b"\x1f\x8b\x08\x00", b"\x09", b"\x0a", b"\xff"],
                     "gzip's magic, the last label, the first bad ones")
    write_dictionary(HERE / "fuzz_cli.dict", cli_dictionary(), "baton's options, commands and values")
    write_dictionary(HERE / "fuzz_safetensors.dict",
                     ['"dtype"', '"shape"', '"data_offsets"', '"F32"', '"I64"', '"F16"', '"__metadata__"',
                      "9223372036854775807", "18446744073709551615", "-1", "[]", "{}"],
                     "safetensors header keys and values")
    write_dictionary(HERE / "fuzz_manifest.dict",
                     ['"format"', '"version"', '"baton-checkpoint"', '"files"', '"name"', '"bytes"', '"crc32"',
                      '"kind"', '"replica"', '"update"', '"parallel"', '"microbatches"', "null", "true", "1e400"],
                     "checkpoint manifest keys and values")


if __name__ == "__main__":
    main()
