#!/usr/bin/env python3
# Reads the TensorBoard event files a baton run wrote into DIR with the real `tensorboard` reader,
# prints each scalar tag with its number of points and first/last (step, value), and fails with one
# line when a record is damaged, DIR holds no events, or an --expect TAG=COUNT does not hold.
import argparse
import logging
import os
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator
except ImportError:
    print("read_tensorboard: the tensorboard package is missing; run this with a Python that has it, "
          "e.g. python3 -m venv VENV && VENV/bin/pip install tensorboard", file=sys.stderr)
    sys.exit(1)


class DamagedRecords(logging.Handler):
    """Keeps what the reader logs about damaged records: it reports a bad CRC or a truncated
    record only as a debug line and then stops reading that file. Its warnings still print."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Truncated record"):
            self.messages.append(message)


def parse_expectation(text):
    tag, separator, count = text.rpartition("=")
    if not separator or not tag or not count.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not TAG=COUNT, e.g. loss=5")
    return tag, int(count)


def fail(message):
    print(f"read_tensorboard: {message}", file=sys.stderr)
    sys.exit(1)


def load_scalars(directory):
    """{tag: [ScalarEvent(wall_time, step, value), ...]} for every scalar in the directory."""
    damaged = DamagedRecords()
    tensorboard_logger = logging.getLogger("tensorboard")
    tensorboard_logger.addHandler(damaged)
    tensorboard_logger.setLevel(logging.DEBUG)
    # Size 0 keeps every point; by default the reader samples scalars down to 10000 per tag.
    accumulator = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.SCALARS: 0})
    try:
        accumulator.Reload()
    except Exception as error:  # the reader raises protobuf's DecodeError and others alike
        fail(f"the reader could not parse the events in {directory}: {type(error).__name__}: {error}")
    if damaged.messages:
        fail(f"the reader found a damaged record in {directory}: {damaged.messages[0]}")
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()[event_accumulator.SCALARS]}


def main():
    parser = argparse.ArgumentParser(description="Check the TensorBoard event files of a baton run.")
    parser.add_argument("directory", help="the folder given to baton's --tensorboard")
    parser.add_argument("--expect", type=parse_expectation, action="append", default=[], metavar="TAG=COUNT",
                        help="fail unless scalar TAG has exactly COUNT points (repeatable)")
    args = parser.parse_args()

    if not os.path.isdir(args.directory):
        fail(f"'{args.directory}' is not a folder; give the folder baton's --tensorboard wrote to")
    if not any("tfevents" in name for name in os.listdir(args.directory)):
        fail(f"'{args.directory}' holds no events.out.tfevents.* file; check that the run was given --tensorboard")
    scalars = load_scalars(args.directory)
    if not scalars:
        fail(f"the event files in '{args.directory}' hold no scalars; check that the run got past its first step")

    for tag, points in sorted(scalars.items()):
        first, last = points[0], points[-1]
        print(f"{tag}: {len(points)} points, first (step {first.step}, {first.value:.6g}), "
              f"last (step {last.step}, {last.value:.6g})")
    for tag, count in args.expect:
        if tag not in scalars:
            fail(f"tag '{tag}' is missing; the tags are {', '.join(sorted(scalars))}")
        if len(scalars[tag]) != count:
            fail(f"tag '{tag}' has {len(scalars[tag])} points, expected {count}")


if __name__ == "__main__":
    main()
