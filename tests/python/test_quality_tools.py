# Tests the quality tools of bench/quality: sweep.py runs the smoke plan (4 trainings on synthetic
# data), a second sweep skips them all, a stopped run resumes and a failing one is reported; report.py
# draws a run's metrics and its timeline (emulated and, with mpirun, 2 MPI ranks) and rejects bad files.
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ beside the sources
REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
QUALITY = os.path.join(REPO, "bench", "quality")
sys.path.insert(0, QUALITY)
import baton_timeline  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SYNTHETIC = ["--dataset", "synthetic", "--train-size", "512", "--test-size", "128", "--threads", "1"]
MPI_ENVIRONMENT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}


def baton_binary():
    return os.environ.get("BATON", os.path.join(REPO, "build", "runtime", "baton"))


def tool(script, *args):
    """(exit status, stdout, stderr) of bench/quality/<script> with args."""
    done = subprocess.run([sys.executable, os.path.join(QUALITY, script), *map(str, args)],
                          capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def train(*args, launcher=()):
    """Runs baton train with args (synthetic data, 1 thread), failing the test on a non-zero exit."""
    environment = {**os.environ, **MPI_ENVIRONMENT} if launcher else None
    subprocess.run([*launcher, baton_binary(), "train", *SYNTHETIC, *map(str, args)], check=True,
                   capture_output=True, env=environment)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f.read().splitlines() if line.strip()]


def table_rows(markdown_path):
    """The body rows of the markdown table (header and separator left out)."""
    rows = [line for line in read_lines(markdown_path) if line.startswith("|")]
    return rows[2:]


def file_bytes(folder):
    """{path: content} of every file under folder."""
    contents = {}
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                contents[os.path.join(root, name)] = f.read()
    return contents


def write_plan(path, runs, baseline, common=" ".join(SYNTHETIC + ["--epochs", "2"])):
    plan = {"common": common, "baseline": baseline, "log_every": 2, "runs": runs}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    return path


class PngChecks(unittest.TestCase):
    def assertPng(self, path):
        self.assertTrue(os.path.isfile(path), f"{path} was not written")
        with open(path, "rb") as f:
            content = f.read()
        self.assertGreater(len(content), len(PNG_MAGIC), path)
        self.assertEqual(content[:8], PNG_MAGIC, f"{path} is not a PNG")

    def assertOneLineError(self, status, out, err, script):
        self.assertEqual(status, 1, err)
        self.assertEqual(out, "")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith(f"{script}: "), err)


MATPLOTLIB_MISSING = importlib.util.find_spec("matplotlib") is None
NEEDS = (MATPLOTLIB_MISSING, "matplotlib is missing (apt-get install python3-matplotlib; run with /usr/bin/python3)")
NEEDS_BATON = (not os.access(baton_binary(), os.X_OK), "no baton binary (set BATON)")


@unittest.skipIf(*NEEDS)
@unittest.skipIf(*NEEDS_BATON)
class SmokeSweep(PngChecks):
    """bench/quality/smoke.json into a temporary folder, then the same sweep again."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.output = os.path.join(cls.tmp.name, "sweep")
        cls.plan = os.path.join(QUALITY, "smoke.json")
        cls.first = tool("sweep.py", cls.plan, "--output", cls.output, "--baton", baton_binary())
        cls.runs_after_first = file_bytes(os.path.join(cls.output, "runs"))
        cls.results_after_first = read_lines(os.path.join(cls.output, "results.jsonl"))
        cls.second = tool("sweep.py", cls.plan, "--output", cls.output, "--baton", baton_binary())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_first_sweep_runs_every_seed(self):
        status, out, err = self.first
        self.assertEqual(status, 0, out + err)
        self.assertEqual(out.count(" train --dataset synthetic"), 4, out)  # each command printed
        self.assertEqual(out.count(": test accuracy "), 4, out)
        self.assertIn("sweep wall time: ", out)

    def test_results_jsonl_has_one_line_per_seed(self):
        records = [json.loads(line) for line in self.results_after_first]
        self.assertEqual(sorted((r["name"], r["seed"]) for r in records),
                         [("delayed2", 1), ("sequential", 1), ("sequential", 2), ("stale2", 1)])
        for record in records:
            self.assertEqual(record["epochs"], 2)
            self.assertEqual(len(record["test_accuracy"]), 2)
            self.assertEqual(record["final_test_accuracy"], record["test_accuracy"][-1])
            self.assertTrue(0 <= record["final_test_accuracy"] <= 1)
            self.assertGreater(record["wall_seconds"], 0)

    def test_results_md_compares_with_the_baseline(self):
        rows = table_rows(os.path.join(self.output, "results.md"))
        self.assertEqual(len(rows), 3, rows)
        baseline, stale, delayed = rows
        self.assertTrue(baseline.startswith("| sequential |") and "±" in baseline and "| baseline |" in baseline)
        self.assertRegex(stale, r"^\| stale2 \| `--stages 2 --pipeline stale --emulate` \| 1 \| \d+\.\d\d \| [+-]\d")
        self.assertRegex(delayed, r"^\| delayed2 \| .* \| 1 \| \d+\.\d\d \| [+-]\d")
        self.assertTrue(read_lines(os.path.join(self.output, "results.md"))[-1].startswith("Sweep wall time: "))

    def test_plots_are_pngs(self):
        self.assertPng(os.path.join(self.output, "plots", "smoke.png"))
        self.assertPng(os.path.join(self.output, "plots", "smoke-loss.png"))

    def test_second_sweep_skips_every_finished_run(self):
        # Checked three ways: it says "done already" for all 4 seeds and prints no baton command, the
        # runs' files (metrics, logs, checkpoints) are byte for byte as the first sweep left them,
        # and results.jsonl gained no line.
        status, out, err = self.second
        self.assertEqual(status, 0, out + err)
        self.assertEqual(out.count(": done already (test accuracy "), 4, out)
        self.assertNotIn(" train ", out)
        self.assertEqual(file_bytes(os.path.join(self.output, "runs")), self.runs_after_first)
        self.assertEqual(read_lines(os.path.join(self.output, "results.jsonl")), self.results_after_first)


@unittest.skipIf(*NEEDS)
@unittest.skipIf(*NEEDS_BATON)
class SweepOfACheckout(PngChecks):
    """results.jsonl is committed and runs/ is not: a sweep of one run in a checkout that lacks the
    others' metrics still writes the table and the accuracy plot, and keeps the loss plot it cannot redraw."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.output = os.path.join(cls.tmp.name, "sweep")
        plan = os.path.join(QUALITY, "smoke.json")
        cls.first = tool("sweep.py", plan, "--output", cls.output, "--baton", baton_binary())
        cls.loss_plot = os.path.join(cls.output, "plots", "smoke-loss.png")
        with open(cls.loss_plot, "rb") as f:
            cls.loss_plot_before = f.read()
        shutil.rmtree(os.path.join(cls.output, "runs", "sequential"))
        cls.again = tool("sweep.py", plan, "--output", cls.output, "--baton", baton_binary(), "--only", "stale2")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_keeps_the_loss_plot_and_says_why(self):
        self.assertEqual(self.first[0], 0, self.first[1] + self.first[2])
        status, out, err = self.again
        self.assertEqual(status, 0, out + err)
        self.assertIn("kept " + self.loss_plot + ": the metrics of sequential seed 1, sequential seed 2 are not in", out)
        with open(self.loss_plot, "rb") as f:
            self.assertEqual(f.read(), self.loss_plot_before)
        self.assertIn("wrote " + os.path.join(self.output, "results.md"), out)
        self.assertPng(os.path.join(self.output, "plots", "smoke.png"))
        self.assertEqual(len(table_rows(os.path.join(self.output, "results.md"))), 3)


@unittest.skipIf(*NEEDS)
@unittest.skipIf(*NEEDS_BATON)
class InterruptedSweep(PngChecks):
    """A run stopped at its epoch-1 checkpoint (exit 75) resumes there in the next sweep; a run
    baton refuses is reported with baton's message and makes the sweep's status non-zero."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.output = os.path.join(cls.tmp.name, "sweep")
        cls.plan = write_plan(os.path.join(cls.tmp.name, "plan.json"), [
            {"name": "stopped", "args": "--stop-after-updates 8", "seeds": [3]},
            {"name": "broken", "args": "--pipeline nonsense", "seeds": [1]}], baseline="stopped")
        cls.first = tool("sweep.py", cls.plan, "--output", cls.output, "--baton", baton_binary())
        cls.second = tool("sweep.py", cls.plan, "--output", cls.output, "--baton", baton_binary(), "--only", "stopped")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_first_sweep_reports_the_stop_and_the_failure(self):
        status, out, err = self.first
        self.assertEqual(status, 1, out + err)
        self.assertIn("[1/2] stopped seed 3: stopped at a checkpoint; run the sweep again to continue (exit 75): "
                      "baton: stopped after update 8", out)
        self.assertIn("[2/2] broken seed 1: failed (exit 1): baton (rank 0): unknown pipeline 'nonsense'", out)

    def test_second_sweep_resumes_from_the_checkpoint(self):
        status, out, err = self.second
        self.assertEqual(status, 0, out + err)
        self.assertIn("# resumes from step-00000008", out)
        self.assertIn("[1/1] stopped seed 3: test accuracy ", out)
        metrics = os.path.join(self.output, "runs", "stopped", "seed3", "metrics.jsonl")
        events = [json.loads(line) for line in read_lines(metrics)]
        self.assertEqual([e["update"] for e in events if e["event"] == "resume"], [8])
        self.assertEqual([e["epoch"] for e in events if e["event"] == "epoch"], [1, 2])
        self.assertEqual([e["update"] for e in events if e["event"] == "step"], list(range(2, 17, 2)))
        records = [json.loads(line) for line in read_lines(os.path.join(self.output, "results.jsonl"))]
        self.assertEqual([(r["name"], r["seed"], r["epochs"]) for r in records], [("stopped", 3, 2)])

    def test_summary_marks_the_failed_run(self):
        rows = table_rows(os.path.join(self.output, "results.md"))
        self.assertRegex(rows[0], r"^\| stopped \| `--stop-after-updates 8` \| 3 \| \d+\.\d\d \| baseline \|")
        self.assertTrue(rows[1].startswith("| broken | `--pipeline nonsense` | none (of 1) | not finished |"), rows[1])
        self.assertPng(os.path.join(self.output, "plots", "all.png"))

    def test_bad_plan_is_one_line(self):
        plan = write_plan(os.path.join(self.tmp.name, "bad.json"), [{"name": "a", "args": ""}], baseline="b")
        status, out, err = tool("sweep.py", plan, "--output", os.path.join(self.tmp.name, "bad"))
        self.assertOneLineError(status, out, err, "sweep.py")
        self.assertIn("the baseline \"b\" is not the name of a run", err)

@unittest.skipIf(*NEEDS)
@unittest.skipIf(*NEEDS_BATON)
class TerminatedSweep(PngChecks):
    """SIGTERM to the sweep while its first run trains: baton checkpoints at the end of epoch 1 and
    exits 75, the sweep starts no other run and exits 75; run again, it resumes there and finishes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.output = os.path.join(cls.tmp.name, "sweep")
        common = "--dataset synthetic --train-size 8192 --test-size 128 --threads 1 --epochs 3"  # epochs of ~0.4 s
        cls.plan = write_plan(os.path.join(cls.tmp.name, "plan.json"), [
            {"name": "first", "args": "", "seeds": [1]}, {"name": "second", "args": "", "seeds": [1]}],
            baseline="first", common=common)
        command = [sys.executable, os.path.join(QUALITY, "sweep.py"), cls.plan, "--output", cls.output,
                   "--baton", baton_binary()]
        sweep = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(os.path.join(cls.output, "runs", "first", "seed1", "metrics.jsonl"))  # baton is training
        sweep.send_signal(signal.SIGTERM)
        out, err = sweep.communicate(timeout=300)
        cls.stopped = sweep.returncode, out, err
        cls.resumed = tool("sweep.py", cls.plan, "--output", cls.output, "--baton", baton_binary())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_stop_then_resume(self):
        status, out, err = self.stopped
        self.assertEqual(status, 75, out + err)
        stop = re.search(r"\[1/2\] first seed 1: stopped at a checkpoint; run the sweep again to continue "
                         r"\(exit 75\): baton: stopped after update (\d+)", out)  # 128 unless epoch 1 was over
        self.assertTrue(stop, out)
        self.assertNotIn("second seed 1", out)
        self.assertIn("stopped by SIGTERM", err)
        status, out, err = self.resumed
        self.assertEqual(status, 0, out + err)
        self.assertIn(f"# resumes from step-{int(stop.group(1)):08d}", out)
        self.assertEqual(out.count(": test accuracy "), 2, out)
        records = [json.loads(line) for line in read_lines(os.path.join(self.output, "results.jsonl"))]
        self.assertEqual([(r["name"], r["epochs"]) for r in records], [("first", 3), ("second", 3)])
        # The same seed and command, stopped or not: the same arithmetic (README, "The resume rule").
        self.assertEqual(records[0]["test_accuracy"], records[1]["test_accuracy"])


def wait_for(path, seconds=60):
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {seconds} s")
        time.sleep(0.01)


@unittest.skipIf(*NEEDS)
@unittest.skipIf(*NEEDS_BATON)
class Report(PngChecks):
    """report.py on metrics and timelines baton writes here."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.metrics = os.path.join(cls.tmp.name, "metrics.jsonl")
        cls.timeline = os.path.join(cls.tmp.name, "timeline.json")
        train("--epochs", 2, "--stages", 2, "--pipeline", "stale", "--emulate", "--log-every", 2,
              "--metrics", cls.metrics, "--timeline", cls.timeline)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def report(self, *inputs):
        output = tempfile.mkdtemp(dir=self.tmp.name)
        return output, tool("report.py", *inputs, "--output", output)

    def assertReport(self, output, result, ranks):
        status, out, err = result
        self.assertEqual(status, 0, out + err)
        for name in ("accuracy.png", "loss.png", "ranks.png"):
            self.assertIn(f"wrote {os.path.join(output, name)}", out)
            self.assertPng(os.path.join(output, name))
        rows = [line.split() for line in out.splitlines() if re.match(r"rank \d+:", line)]
        self.assertEqual([row[1] for row in rows], [f"{rank}:" for rank in range(ranks)], out)
        totals = {row[-2] for row in rows}
        self.assertEqual(len(totals), 1, f"every rank's compute + comm + idle spans the whole trace: {out}")

    def test_metrics_and_emulated_timeline(self):
        output, result = self.report(self.metrics, self.timeline)
        self.assertReport(output, result, ranks=2)

    @unittest.skipUnless(shutil.which("mpirun"), "no mpirun")
    def test_metrics_and_mpi_timeline(self):
        metrics, timeline = os.path.join(self.tmp.name, "mpi.jsonl"), os.path.join(self.tmp.name, "mpi.json")
        train("--epochs", 1, "--stages", 2, "--pipeline", "gpipe", "--microbatches", 2, "--metrics", metrics,
              "--timeline", timeline, launcher=("mpirun", "--oversubscribe", "--bind-to", "none", "-np", "2"))
        output, result = self.report(metrics, timeline)
        self.assertReport(output, result, ranks=2)

    def test_metrics_alone(self):
        output, (status, out, err) = self.report(self.metrics)
        self.assertEqual(status, 0, err)
        self.assertEqual(sorted(os.listdir(output)), ["accuracy.png", "loss.png"])

    def test_corrupt_metrics_is_one_line(self):
        corrupt = os.path.join(self.tmp.name, "corrupt.jsonl")
        with open(self.metrics, encoding="utf-8") as f:
            content = f.read()
        with open(corrupt, "w", encoding="utf-8") as f:
            f.write(content[:len(content) // 2])  # cut in the middle of a line
        status, out, err = self.report(corrupt, self.timeline)[1]
        self.assertOneLineError(status, out, err, "report.py")
        self.assertIn("is not JSON", err)

    def test_missing_files_are_one_line(self):
        missing = os.path.join(self.tmp.name, "missing.jsonl")
        status, out, err = self.report(missing)[1]
        self.assertOneLineError(status, out, err, "report.py")
        self.assertIn(f"cannot read the metrics file {missing}", err)
        status, out, err = self.report(self.metrics, self.metrics)[1]  # metrics given as the timeline
        self.assertOneLineError(status, out, err, "report.py")
        self.assertIn("is not a JSON timeline", err)


class TimelineSplit(unittest.TestCase):
    """baton_timeline's accounting on a hand-made 2-rank GPipe trace (2 updates of 2 microbatches)."""

    def test_split_per_update(self):
        box = baton_timeline.Box
        boxes = [box(0, "F0 s0 v0", "compute", 0, 10), box(0, "send-act 0 >r1", "other", 10, 2),
                 box(0, "F1 s1 v0", "compute", 12, 10), box(0, "recv-grad 1 <r1", "other", 40, 1),
                 box(0, "step u0", "other", 41, 1), box(0, "F2 s0 v1", "compute", 42, 10),
                 box(0, "F3 s1 v1", "compute", 52, 10), box(0, "step u1", "other", 62, 2),
                 box(1, "recv-act 0 <r0", "other", 12, 1), box(1, "F0 s0 v0", "compute", 13, 5),
                 box(1, "step u1", "other", 70, 2)]
        rank0, rank1 = baton_timeline.rank_times({0: "rank 0: stage 0, replica 0"}, boxes)
        self.assertEqual(rank0.row, "rank 0: stage 0, replica 0")
        self.assertEqual(rank1.row, "rank 1")
        self.assertEqual(rank0.per_update["compute"], {0: 21.0, 1: 22.0})  # step u0 counts as compute
        self.assertEqual(rank0.per_update["communication"], {0: 3.0})
        self.assertEqual(rank0.per_update["idle"], {0: 18.0, 1: 8.0})  # 22..40, then 64..72 at the end
        self.assertEqual(rank1.per_update["idle"], {0: 12.0, 1: 52.0})
        for rank in (rank0, rank1):
            self.assertEqual(sum(rank.total(activity) for activity in baton_timeline.ACTIVITIES), 72.0)


if __name__ == "__main__":
    unittest.main()
