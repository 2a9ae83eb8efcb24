#!/usr/bin/env python3
# Runs a plan of baton trainings, each row over several seeds, and compares them: results.jsonl,
# results.md (test accuracy mean ± std against a baseline row) and per-group plots. Resumable: run
# the same command again after an interruption and each run continues from its newest checkpoint.
# Usage: sweep.py PLAN.json --output DIR [--baton PATH] [--only NAME...]   (run with /usr/bin/python3)
import argparse
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import baton_metrics  # noqa: E402
import plotting  # noqa: E402

DEFAULT_BATON = os.environ.get("BATON", os.path.normpath(os.path.join(HERE, "..", "..", "build", "runtime", "baton")))
STOPPED_AT_CHECKPOINT = 75  # baton's exit status after a checkpointed stop (README, "Stopping")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
PLAN_KEYS = {"description", "common", "baseline", "runs", "log_every"}
RUN_KEYS = {"name", "args", "seeds", "group", "launcher"}
RESULT_KEYS = {"name", "seed", "args", "epochs", "final_test_accuracy", "test_accuracy", "wall_seconds"}


class PlanError(Exception):
    """One sentence saying what is wrong with a plan."""


@dataclass
class Run:
    name: str
    args: str        # as written in the plan, for the table
    seeds: list
    groups: list
    launcher: str    # e.g. "mpirun -np 2 --oversubscribe"; empty: baton runs directly


@dataclass
class Plan:
    common: str
    baseline: str
    runs: list
    log_every: int


# ---------------------------------------------------------------- the plan

def load_plan(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as error:
        raise PlanError(f"cannot read the plan {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PlanError(f"the plan {path} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise PlanError(f"the plan {path} must be a JSON object with \"common\", \"baseline\" and \"runs\"")
    check_keys(path, "the plan", data, PLAN_KEYS)
    runs = [parse_run(path, index, row) for index, row in enumerate(as_list(path, "runs", data.get("runs")))]
    names = [run.name for run in runs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PlanError(f"{path}: the run name {duplicates[0]} appears more than once")
    baseline = data.get("baseline", names[0] if names else "")
    if baseline not in names:
        raise PlanError(f"{path}: the baseline \"{baseline}\" is not the name of a run")
    log_every = data.get("log_every", 10)
    if not isinstance(log_every, int) or log_every < 1:
        raise PlanError(f"{path}: \"log_every\" must be a positive integer")
    return Plan(as_arguments(path, "common", data.get("common", "")), baseline, runs, log_every)


def parse_run(path, index, row):
    where = f"run {index + 1}"
    if not isinstance(row, dict):
        raise PlanError(f"{path}: {where} must be an object with \"name\", \"args\" and \"seeds\"")
    check_keys(path, where, row, RUN_KEYS)
    name = row.get("name")
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise PlanError(f"{path}: {where} needs a \"name\" of letters, digits, '.', '_' or '-' (it names a folder)")
    seeds = row.get("seeds", [1])
    integers = isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    if not seeds or not integers:
        raise PlanError(f"{path}: run {name} needs \"seeds\" as a non-empty list of integers")
    groups = row.get("group", "all")
    groups = [groups] if isinstance(groups, str) else groups
    if not isinstance(groups, list) or not groups or not all(isinstance(g, str) and g for g in groups):
        raise PlanError(f"{path}: run {name} needs \"group\" as a name or a list of names")
    return Run(name, as_arguments(path, f"run {name}'s args", row.get("args", "")), list(dict.fromkeys(seeds)),
               groups, as_arguments(path, f"run {name}'s launcher", row.get("launcher", "")))


def check_keys(path, where, data, allowed):
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PlanError(f"{path}: {where} has the unknown key \"{unknown[0]}\" (known: {', '.join(sorted(allowed))})")


def as_list(path, key, value):
    if not isinstance(value, list) or not value:
        raise PlanError(f"{path}: \"{key}\" must be a non-empty list")
    return value


def as_arguments(path, what, value):
    """The plan's arguments as one string (a list of words is joined with shell quoting)."""
    if isinstance(value, list) and all(isinstance(word, str) for word in value):
        return shlex.join(value)
    if not isinstance(value, str):
        raise PlanError(f"{path}: {what} must be a string of arguments")
    try:
        shlex.split(value)
    except ValueError as error:
        raise PlanError(f"{path}: {what} cannot be split into words: {error}") from None
    return value


# ---------------------------------------------------------------- running

def seed_folder(output, name, seed):
    return os.path.join(output, "runs", name, f"seed{seed}")


def train_command(baton, plan, run, seed, folder):
    return [*shlex.split(run.launcher), baton, "train", *shlex.split(plan.common), *shlex.split(run.args),
            "--seed", str(seed), "--metrics", os.path.join(folder, "metrics.jsonl"),
            "--checkpoint-dir", os.path.join(folder, "checkpoints"), "--resume", "--log-every", str(plan.log_every)]


def finished_events(folder):
    """The metrics events of a run that holds its last epoch, else None."""
    try:
        events = baton_metrics.read_events(os.path.join(folder, "metrics.jsonl"))
    except baton_metrics.MetricsError:
        return None  # not started, or damaged: baton's --resume cuts it back to its checkpoint
    return events if baton_metrics.is_finished(events) else None


def newest_checkpoint(folder):
    """Name of the newest complete checkpoint baton would resume from, or None."""
    try:
        names = os.listdir(os.path.join(folder, "checkpoints"))
    except OSError:
        return None
    steps = sorted(name for name in names if re.fullmatch(r"step-\d+", name))
    return steps[-1] if steps else None


def add_wall_seconds(folder, seconds):
    """Adds seconds to the run's wall time kept across interrupted attempts; returns the sum."""
    path = os.path.join(folder, "wall_seconds")
    try:
        with open(path, encoding="utf-8") as f:
            seconds += float(f.read())
    except (OSError, ValueError):
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{seconds:.3f}\n")
    return seconds


class Stopping:
    """SIGTERM to the sweep (a scheduler's time limit, `kill`) asks the running baton to checkpoint
    and stop, with SIGUSR1, which mpirun and srun forward to every rank; no further run starts."""
    child = None
    requested = False

    @classmethod
    def on_signal(cls, signum, frame):
        cls.requested = True
        if cls.child is not None and cls.child.poll() is None:
            cls.child.send_signal(signal.SIGUSR1)


def execute(command, folder):
    """(exit status, stdout, stderr) of command; both are also appended to stdout.log and stderr.log."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace") as child:
        Stopping.child = child
        try:
            out, err = child.communicate()
        except BaseException:  # Ctrl-C: baton had it too; a SIGINT to the sweep alone must not leave it running
            child.kill()
            raise
        finally:
            Stopping.child = None
    for name, text in (("stdout.log", out), ("stderr.log", err)):
        with open(os.path.join(folder, name), "a", encoding="utf-8") as log:
            log.write(text)
    return child.returncode, out, err


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def result_record(run, seed, events, wall_seconds):
    epochs = baton_metrics.of_kind(events, "epoch")
    return {"name": run.name, "seed": seed, "args": run.args, "epochs": len(epochs),
            "final_test_accuracy": epochs[-1]["test_accuracy"],
            "test_accuracy": [event["test_accuracy"] for event in epochs], "wall_seconds": round(wall_seconds, 3)}


def append_result(output, record):
    with open(os.path.join(output, "results.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_results(output):
    """The newest results.jsonl record of each (name, seed). A damaged line (a sweep killed while
    writing it) is passed over: its run is then noted again when the sweep finds it done already."""
    records = {}
    try:
        with open(os.path.join(output, "results.jsonl"), encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and RESULT_KEYS <= set(record):
            records[(record["name"], record["seed"])] = record
    return records


def run_one(baton, plan, run, seed, output, label):
    """Trains (or skips) one seed of a run; returns True when it has finished."""
    folder = seed_folder(output, run.name, seed)
    os.makedirs(folder, exist_ok=True)
    events = finished_events(folder)
    if events:
        if (run.name, seed) not in read_results(output):  # finished, but the sweep stopped before noting it
            append_result(output, result_record(run, seed, events, add_wall_seconds(folder, 0.0)))
        print(f"{label}: done already (test accuracy {percent(events)})", flush=True)
        return True
    command = train_command(baton, plan, run, seed, folder)
    checkpoint = newest_checkpoint(folder)
    print(f"{label}: {shlex.join(command)}" + (f"   # resumes from {checkpoint}" if checkpoint else ""), flush=True)
    started = time.monotonic()
    try:
        status, out, err = execute(command, folder)
    finally:
        wall = add_wall_seconds(folder, time.monotonic() - started)
    events = finished_events(folder) if status == 0 else None
    if events:
        append_result(output, result_record(run, seed, events, wall))
        print(f"{label}: test accuracy {percent(events)} after {len(baton_metrics.of_kind(events, 'epoch'))} "
              f"epochs, {wall:.1f} s", flush=True)
        return True
    report_unfinished(label, status, out, err)
    return False


def report_unfinished(label, status, out, err):
    """One line on why a run did not finish: baton's stop message (stdout) or its error (stderr)."""
    if status == STOPPED_AT_CHECKPOINT:
        why = f"stopped at a checkpoint; run the sweep again to continue (exit {status}): {last_line(out)}"
    elif status == 0:
        why = f"exited without its last epoch in the metrics (exit 0): {last_line(out)}"
    else:
        why = f"failed (exit {status}): {last_line(err)}"
    print(f"{label}: {why}", flush=True)


def plural(count, noun):
    return f"{count} {noun}" + ("" if count == 1 else "s")


def percent(events):
    return f"{100 * baton_metrics.of_kind(events, 'epoch')[-1]['test_accuracy']:.2f} %"


# ---------------------------------------------------------------- the summary

def spread(values):
    """'mean ± sample std' of percentages, or the value alone for one."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def mean_accuracy(records):
    """Mean final test accuracy in %, or None without records."""
    return statistics.mean(100 * record["final_test_accuracy"] for record in records) if records else None


def table_row(run, records, plan, baseline_mean):
    args = "`" + run.args.replace("|", "\\|") + "`" if run.args.strip() else "(none)"
    if not records:
        return f"| {run.name} | {args} | {seeds_text(run, records)} | not finished | | |"
    accuracies = [100 * record["final_test_accuracy"] for record in records]
    if run.name == plan.baseline:
        difference = "baseline"
    elif baseline_mean is None:
        difference = "—"
    else:
        difference = f"{statistics.mean(accuracies) - baseline_mean:+.2f}"
    wall = sum(record["wall_seconds"] for record in records)
    return (f"| {run.name} | {args} | {seeds_text(run, records)} | {spread(accuracies)} | {difference} "
            f"| {wall:.1f} s |")


def seeds_text(run, records):
    done = [record["seed"] for record in records]
    text = ", ".join(map(str, done)) or "none"
    return text if len(done) == len(run.seeds) else f"{text} (of {', '.join(map(str, run.seeds))})"


def finished_records(plan, records):
    """Per run name, its records for the plan's seeds, in seed order."""
    return {run.name: [records[(run.name, seed)] for seed in run.seeds if (run.name, seed) in records]
            for run in plan.runs}


def write_table(plan, records, output, sweep_seconds):
    by_run = finished_records(plan, records)
    baseline_mean = mean_accuracy(by_run[plan.baseline])
    lines = ["# Sweep results", "", f"Every run: `baton train {plan.common}` plus its args. Test accuracy after the "
             "last epoch, in %, mean ± sample standard deviation over the seeds; difference to the baseline "
             f"**{plan.baseline}** in points; wall time summed over the seeds.", "",
             "| run | args | seeds | test accuracy (%) | vs baseline (points) | wall time |",
             "|---|---|---|---|---|---|"]
    lines += [table_row(run, by_run[run.name], plan, baseline_mean) for run in plan.runs]
    lines += ["", f"Sweep wall time: {sweep_seconds:.1f} s (this invocation; runs done already took none of it)."]
    path = os.path.join(output, "results.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def band(pyplot_axes, xs, series, label):
    """A mean line over series (lists of equal length) with a min–max band when there are several."""
    means = [statistics.mean(column) for column in zip(*series)]
    line, = pyplot_axes.plot(xs, means, "-", marker="o" if len(xs) < 30 else None, label=label)
    if len(series) > 1:
        pyplot_axes.fill_between(xs, [min(c) for c in zip(*series)], [max(c) for c in zip(*series)],
                                 color=line.get_color(), alpha=0.2)


def step_losses(output, name, seed):
    """{update: loss} of one run's step events; None when its metrics file is gone (results.jsonl is
    committed, runs/ is not, so a checkout holds the results of runs whose metrics it lacks)."""
    path = os.path.join(seed_folder(output, name, seed), "metrics.jsonl")
    if not os.path.exists(path):
        return None
    return {event["update"]: event["loss"] for event in baton_metrics.of_kind(baton_metrics.read_events(path), "step")}


def plot_accuracy(pyplot, runs, by_run, path):
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for run in runs:
        series = [[100 * a for a in record["test_accuracy"]] for record in by_run[run.name]]
        length = min(map(len, series))
        label = f"{run.name} ({plural(len(series), 'seed')})"
        band(axes, list(range(1, length + 1)), [s[:length] for s in series], label)
    axes.xaxis.set_major_locator(plotting.integer_ticks())
    axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy (mean, band: min–max over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return plotting.save(pyplot, figure, path)


def plot_loss(pyplot, runs, by_run, output, path):
    """Draws the group's loss curves; keeps the existing plot (returns None) when a run's metrics are gone."""
    curves = {(run.name, record["seed"]): step_losses(output, run.name, record["seed"])
              for run in runs for record in by_run[run.name]}
    gone = [f"{name} seed {seed}" for (name, seed), losses in curves.items() if losses is None]
    if gone:
        print(f"kept {path}: the metrics of {', '.join(gone)} are not in {output}/runs, so its curves cannot be redrawn")
        return None
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    drawn = 0
    for run in runs:
        losses = [curves[(run.name, record["seed"])] for record in by_run[run.name]]
        updates = sorted(set.intersection(*(set(seed_losses) for seed_losses in losses)))
        if updates:
            band(axes, updates, [[seed_losses[u] for u in updates] for seed_losses in losses], run.name)
            drawn += 1
    if not drawn:
        axes.text(0.5, 0.5, "no step events (fewer updates than log_every?)", ha="center", transform=axes.transAxes)
    axes.set(xlabel="update", ylabel="training loss", title="loss per update (mean, band: min–max over seeds)")
    axes.grid(alpha=0.3)
    if drawn:
        axes.legend(fontsize=8)
    return plotting.save(pyplot, figure, path)


def write_plots(plan, records, output):
    pyplot = plotting.load_pyplot()
    by_run = finished_records(plan, records)
    groups = list(dict.fromkeys(group for run in plan.runs for group in run.groups))
    written = []
    for group in groups:
        runs = [run for run in plan.runs if group in run.groups and by_run[run.name]]
        if runs:
            stem = os.path.join(output, "plots", re.sub(r"[^A-Za-z0-9_.-]+", "-", group))
            written.append(plot_accuracy(pyplot, runs, by_run, stem + ".png"))
            loss_plot = plot_loss(pyplot, runs, by_run, output, stem + "-loss.png")
            if loss_plot:
                written.append(loss_plot)
    return written


# ---------------------------------------------------------------- main

def parse_arguments():
    parser = argparse.ArgumentParser(description="Run a plan of baton trainings over seeds and compare them.")
    parser.add_argument("plan", help='JSON: {"common", "baseline", "runs": [{"name", "args", "seeds", "group"}]}')
    parser.add_argument("--output", required=True, help="folder for runs/, results.jsonl, results.md, plots/")
    parser.add_argument("--baton", default=DEFAULT_BATON,
                        help="the baton program (default: $BATON, else build/runtime/baton)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these rows (the summary covers all)")
    return parser.parse_args()


def selected_runs(plan, only):
    if not only:
        return plan.runs
    unknown = sorted(set(only) - {run.name for run in plan.runs})
    if unknown:
        raise PlanError(f"--only names {unknown[0]}, which is not a run of the plan")
    return [run for run in plan.runs if run.name in only]


def run_all(baton, plan, runs, output):
    """Runs every seed of runs in order until done or stopped; returns how many did not finish."""
    pairs = [(run, seed) for run in runs for seed in run.seeds]
    failures = 0
    for index, (run, seed) in enumerate(pairs, 1):
        if Stopping.requested:
            return failures + len(pairs) - index + 1
        failures += not run_one(baton, plan, run, seed, output, f"[{index}/{len(pairs)}] {run.name} seed {seed}")
    return failures



def main():
    args = parse_arguments()
    started = time.monotonic()
    try:
        plan = load_plan(args.plan)
        runs = selected_runs(plan, args.only)
        plotting.load_pyplot()  # fail before training, not after
    except (PlanError, plotting.PlottingError) as error:
        sys.exit(f"sweep.py: {error}")
    if not os.access(args.baton, os.X_OK):
        sys.exit(f"sweep.py: {args.baton} is not an executable baton program; build it or pass --baton PATH")
    os.makedirs(args.output, exist_ok=True)
    signal.signal(signal.SIGTERM, Stopping.on_signal)
    try:
        failures = run_all(args.baton, plan, runs, args.output)
    except KeyboardInterrupt:
        sys.exit("sweep.py: interrupted; run the same command again to continue from each run's newest checkpoint")
    records = read_results(args.output)
    seconds = time.monotonic() - started
    for path in [write_table(plan, records, args.output, seconds), *write_plots(plan, records, args.output)]:
        print(f"wrote {path}")
    print(f"sweep wall time: {seconds:.1f} s" + (f"; {failures} run(s) did not finish" if failures else ""))
    if Stopping.requested:
        print("sweep.py: stopped by SIGTERM; run the same command again to continue", file=sys.stderr)
        sys.exit(STOPPED_AT_CHECKPOINT)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
