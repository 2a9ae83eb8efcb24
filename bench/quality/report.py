#!/usr/bin/env python3
# Draws one baton run: accuracy.png and loss.png from its --metrics file and, given its --timeline,
# ranks.png with each rank's compute / communication / idle time per update (plus a text table).
# Usage: report.py METRICS.jsonl [TIMELINE.json] --output DIR   (run with /usr/bin/python3)
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baton_metrics  # noqa: E402
import baton_timeline  # noqa: E402
import plotting  # noqa: E402

ACTIVITY_COLOURS = {"compute": "tab:blue", "communication": "tab:orange", "idle": "lightgrey"}
ACTIVITY_LABELS = {"compute": "compute", "communication": "communication / waiting", "idle": "idle"}


def plot_accuracy(pyplot, epochs, path):
    figure, axes = pyplot.subplots(figsize=(6, 4))
    numbers = [event["epoch"] for event in epochs]
    axes.plot(numbers, [100 * event["train_accuracy"] for event in epochs], "o-", label="train")
    axes.plot(numbers, [100 * event["test_accuracy"] for event in epochs], "s-", label="test")
    axes.xaxis.set_major_locator(plotting.integer_ticks())
    axes.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy per epoch")
    axes.grid(alpha=0.3)
    axes.legend()
    return plotting.save(pyplot, figure, path)


def plot_loss(pyplot, epochs, steps, path):
    """Loss against updates done: every step event, and each epoch's train and test loss at its end."""
    figure, axes = pyplot.subplots(figsize=(6, 4))
    if steps:
        axes.plot([event["update"] for event in steps], [event["loss"] for event in steps], "-", lw=1,
                  label="update (step events)")
    ends = [event["update"] for event in epochs]
    axes.plot(ends, [event["train_loss"] for event in epochs], "o--", label="train (epoch mean)")
    axes.plot(ends, [event["test_loss"] for event in epochs], "s--", label="test (epoch end)")
    axes.set(xlabel="updates done", ylabel="loss", title="loss")
    axes.grid(alpha=0.3)
    axes.legend()
    return plotting.save(pyplot, figure, path)


def plot_ranks(pyplot, times, path):
    """One panel per rank: stacked bars per update of compute, communication and idle (ms)."""
    figure, panels = pyplot.subplots(len(times), 1, figsize=(8, 1.2 + 1.6 * len(times)), sharex=True,
                                     squeeze=False)
    for panel, rank in zip(panels[:, 0], times):
        updates = sorted(set().union(*(rank.per_update[activity] for activity in baton_timeline.ACTIVITIES)))
        bottom = [0.0] * len(updates)
        for activity in baton_timeline.ACTIVITIES:
            heights = [rank.per_update[activity].get(update, 0.0) / 1000 for update in updates]
            panel.bar(updates, heights, bottom=bottom, color=ACTIVITY_COLOURS[activity],
                      label=ACTIVITY_LABELS[activity])
            bottom = [b + h for b, h in zip(bottom, heights)]
        panel.set_ylabel("ms")
        panel.set_title(rank.row, fontsize=9, loc="left")
    panels[0, 0].legend(fontsize=8, ncol=3, loc="upper right")
    panels[-1, 0].set_xlabel("update (of the traced first segment)")
    return plotting.save(pyplot, figure, path)


def rank_table(times):
    """Per rank: total ms of each activity and the compute share, as aligned text."""
    lines = [f"{'rank':<32} {'compute ms':>11} {'comm/wait ms':>13} {'idle ms':>9} {'total ms':>9} {'compute':>8}"]
    for rank in times:
        compute, communication, idle = (rank.total(activity) / 1000 for activity in baton_timeline.ACTIVITIES)
        total = compute + communication + idle
        share = 100 * compute / total if total else 0.0
        lines.append(f"{rank.row:<32} {compute:>11.2f} {communication:>13.2f} {idle:>9.2f} {total:>9.2f} "
                     f"{share:>7.1f}%")
    return "\n".join(lines)


def parse_arguments():
    parser = argparse.ArgumentParser(description="Plot a baton run's metrics and, optionally, its timeline.")
    parser.add_argument("metrics", help="JSON-lines file written by baton train --metrics")
    parser.add_argument("timeline", nargs="?", help="Chrome trace written by baton train --timeline")
    parser.add_argument("--output", required=True, help="folder for accuracy.png, loss.png, ranks.png")
    return parser.parse_args()


def main():
    args = parse_arguments()
    try:
        events = baton_metrics.read_events(args.metrics)
        epochs = baton_metrics.of_kind(events, "epoch")
        if not epochs:
            raise baton_metrics.MetricsError(f"{args.metrics} holds no epoch event; did the run finish an epoch?")
        timeline = baton_timeline.read_timeline(args.timeline) if args.timeline else None
        pyplot = plotting.load_pyplot()
    except (baton_metrics.MetricsError, baton_timeline.TimelineError, plotting.PlottingError) as error:
        sys.exit(f"report.py: {error}")
    written = [plot_accuracy(pyplot, epochs, os.path.join(args.output, "accuracy.png")),
               plot_loss(pyplot, epochs, baton_metrics.of_kind(events, "step"), os.path.join(args.output, "loss.png"))]
    if timeline:
        times = baton_timeline.rank_times(*timeline)
        written.append(plot_ranks(pyplot, times, os.path.join(args.output, "ranks.png")))
        print(rank_table(times))
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
