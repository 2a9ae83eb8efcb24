// The jobs/slurm scripts on a real one-node Slurm cluster (tests/slurm/local_cluster.sh, started once
// for the suite in a temporary folder): every script completes a short run, and a job whose batch
// shell gets SIGUSR1 checkpoints, requeues itself, resumes and ends with the weights of a run never
// interrupted. Skips when Slurm's Debian packages are missing or the test does not run as root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const fs::path kSource = BATON_SOURCE_DIR;
// Short runs for every script: the arguments go to `baton train` after the script's config.
const std::string kShortRun = "--dataset synthetic --train-size 512 --test-size 128 --epochs 2";
// The preempted job: 8 epochs of 256 updates (about 1 s each on one core per rank), a checkpoint
// every 64 updates, so there is time to signal it after its first epoch and first checkpoint.
const std::string kPreemptScript = "dp_delayed.sbatch";
const int kPreemptEpochs = 8;
const std::string kPreemptRun = "--dataset synthetic --train-size 16384 --test-size 128 --epochs 8 --checkpoint-every 64";

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string tail(const std::string& text, size_t chars = 4000) {
  return text.size() <= chars ? text : "..." + text.substr(text.size() - chars);
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// One job as `scontrol show job` reports it, with every (state, restarts) change the test saw.
struct Job {
  std::string id, script;
  std::string state = "SUBMITTED", name, exit_code, run_time, out_path;
  int restarts = 0;
  std::string history;  // e.g. "PENDING 0.0 s, RUNNING 0.4 s, COMPLETED 2.1 s"
  Clock::time_point submitted = Clock::now();

  bool finished() const {
    static const std::vector<std::string> done = {"COMPLETED", "FAILED",    "CANCELLED",     "TIMEOUT",   "NODE_FAIL",
                                                  "PREEMPTED", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE", "GONE"};
    return std::find(done.begin(), done.end(), state) != done.end();
  }
  std::string output() const { return out_path.empty() ? "(no output file known)" : slurp(out_path); }
  std::string summary() const {
    return "job " + id + " (" + script + "): " + state + ", restarts " + std::to_string(restarts) + ", exit " +
           exit_code + ", run time " + run_time + "; seen: " + history;
  }
};

class Slurm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    remove_leftovers();
    dir_ = fs::temp_directory_path() / ("baton_slurm_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (geteuid() != 0) {
      skip_ = "the Slurm tests start slurmd and need root";
      return;
    }
    auto start = Clock::now();
    test::RunResult r = test::run_command("bash " + (kSource / "tests/slurm/local_cluster.sh").string() + " up " +
                                              (dir_ / "cluster").string(),
                                          90);
    std::printf("local_cluster.sh up: exit %d in %.1f s\n%s%s", r.exit_code, seconds_since(start), r.out.c_str(),
                r.err.c_str());
    if (r.exit_code != 0 && r.err.find("not found: install") != std::string::npos) {
      skip_ = r.err;
      return;
    }
    up_ = r.exit_code == 0;
    if (!up_) up_error_ = "local_cluster.sh up failed (exit " + std::to_string(r.exit_code) + "): " + r.out + r.err;
    slurm_env_ = "SLURM_CONF=" + (dir_ / "cluster" / "slurm.conf").string() + " PATH=$PATH:/usr/sbin ";
  }

  static void TearDownTestSuite() {
    if (fs::exists(dir_ / "cluster" / "slurm.conf")) {
      test::RunResult r = test::run_command(
          "bash " + (kSource / "tests/slurm/local_cluster.sh").string() + " down " + (dir_ / "cluster").string(), 90);
      std::printf("local_cluster.sh down: exit %d\n%s%s", r.exit_code, r.out.c_str(), r.err.c_str());
    }
    fs::remove_all(dir_);
  }

  // A run killed before TearDownTestSuite (ctest's timeout, a closed pipe) leaves its cluster up:
  // stop those whose test process is gone.
  static void remove_leftovers() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(fs::temp_directory_path(), ec)) {
      std::smatch m;
      const std::string name = entry.path().filename().string();
      if (!std::regex_match(name, m, std::regex(R"(baton_slurm_(\d+))")) || fs::exists("/proc/" + m[1].str())) continue;
      if (fs::exists(entry.path() / "cluster" / "slurm.conf")) {
        test::RunResult r = test::run_command(
            "bash " + (kSource / "tests/slurm/local_cluster.sh").string() + " down " + (entry.path() / "cluster").string(),
            90);
        std::printf("stopped the cluster a killed run left in %s: %s%s", entry.path().c_str(), r.out.c_str(),
                    r.err.c_str());
      }
      fs::remove_all(entry.path(), ec);
    }
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(up_) << up_error_;
  }

  // Runs a Slurm client command against the suite's cluster.
  static test::RunResult slurm(const std::string& command, int timeout = 30) {
    return test::run_command("env " + slurm_env_ + command, timeout);
  }

  // Submits jobs/slurm/<script> from the repo root, the job working in `workdir`; returns the job.
  static Job submit(const std::string& script, const std::string& arguments, const fs::path& workdir) {
    fs::create_directories(workdir);
    const std::string command = "env -C " + kSource.string() + " " + slurm_env_ + "BATON=" BATON_BINARY
                                " sbatch --parsable --chdir=" + workdir.string() + " jobs/slurm/" + script + " " +
                                arguments;
    std::printf("submit: %s\n", command.c_str());
    Job job;
    job.script = script;
    test::RunResult r = test::run_command(command, 30);
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.out << r.err;
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex(R"(^(\d+))"))) job.id = m[1];
    EXPECT_FALSE(job.id.empty()) << "sbatch printed no job id: " << r.out << r.err;
    job.submitted = Clock::now();
    return job;
  }

  // Reads the job's state from `scontrol show job` and records it when it changed.
  static void poll(Job& job) {
    if (job.id.empty()) {
      job.state = "GONE";
      return;
    }
    test::RunResult r = slurm("scontrol -o show job " + job.id);
    std::map<std::string, std::string> field;
    const std::regex pair(R"((\w+)=(\S*))");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), pair); it != std::sregex_iterator(); ++it)
      field[(*it)[1]] = (*it)[2];
    const std::string state = r.exit_code == 0 && field.count("JobState") ? field["JobState"] : "GONE";
    const int restarts = field.count("Restarts") ? std::stoi(field["Restarts"]) : job.restarts;
    if (state != job.state || restarts != job.restarts) {
      char seen[96];
      std::snprintf(seen, sizeof seen, "%s%s %.1f s", job.history.empty() ? "" : ", ", state.c_str(),
                    seconds_since(job.submitted));
      job.history += seen;
      if (restarts != job.restarts) job.history += " (restarts " + std::to_string(restarts) + ")";
    }
    job.state = state;
    job.restarts = restarts;
    if (field.count("JobName")) job.name = field["JobName"];
    if (field.count("ExitCode")) job.exit_code = field["ExitCode"];
    if (field.count("RunTime")) job.run_time = field["RunTime"];
    if (field.count("StdOut")) job.out_path = field["StdOut"];
  }

  // Polls the jobs until all have finished or `timeout` seconds have passed; false on timeout.
  static bool wait_all(std::vector<Job*> jobs, double timeout) {
    auto start = Clock::now();
    while (seconds_since(start) < timeout) {
      bool all = true;
      for (Job* job : jobs) {
        if (!job->finished()) poll(*job);
        all = all && job->finished();
      }
      if (all) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  static inline fs::path dir_;
  static inline std::string skip_, up_error_, slurm_env_;
  static inline bool up_ = false;
};

TEST_F(Slurm, EveryJobScriptCompletesAShortRun) {
  std::vector<std::string> scripts;
  for (const auto& entry : fs::directory_iterator(kSource / "jobs" / "slurm"))
    if (entry.path().extension() == ".sbatch") scripts.push_back(entry.path().filename().string());
  std::sort(scripts.begin(), scripts.end());
  ASSERT_GE(scripts.size(), 5u) << "jobs/slurm should hold at least dp_delayed, stale_pipeline, grid, hybrid, mpirun";

  std::vector<Job> jobs;
  for (const std::string& script : scripts) jobs.push_back(submit(script, kShortRun, dir_ / "short" / script));
  std::vector<Job*> all;
  for (Job& job : jobs) all.push_back(&job);
  const bool in_time = wait_all(all, 300);

  size_t completed = 0;
  for (const Job& job : jobs) {
    std::printf("%s\n", job.summary().c_str());
    const std::string out = job.output();
    SCOPED_TRACE(job.summary() + "\noutput " + job.out_path + ":\n" + tail(out));
    EXPECT_EQ(job.state, "COMPLETED");
    EXPECT_EQ(job.exit_code, "0:0");
    EXPECT_EQ(job.restarts, 0);
    EXPECT_EQ(count_of(out, "start 1 of job " + job.name), 1u) << "step.sh's first line";
    EXPECT_EQ(count_of(out, "epoch 2/2"), 1u);
    EXPECT_NE(out.find("the step exited with status 0"), std::string::npos);
    if (job.state == "COMPLETED") ++completed;
  }
  EXPECT_TRUE(in_time) << "not all jobs finished within 300 s";
  std::printf("%zu of %zu scripts completed\n", completed, scripts.size());
  EXPECT_EQ(completed, scripts.size());
  fs::remove_all(dir_ / "short");
}

// The newest complete checkpoint (step-<8 digits> with its manifest.json; one being written is
// step-<n>.partial) in a checkpoint folder, or "" when there is none.
std::string newest_checkpoint(const fs::path& dir) {
  std::string newest;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, std::regex(R"(step-\d{8})")) && fs::exists(entry.path() / "manifest.json", ec) &&
        name > newest)
      newest = name;
  }
  return newest;
}

TEST_F(Slurm, ASignalledJobCheckpointsRequeuesAndEndsWithTheWeightsOfAnUninterruptedRun) {
  const fs::path work = dir_ / "preempt";
  Job stopped = submit(kPreemptScript, kPreemptRun, work / "stopped");
  Job reference = submit(kPreemptScript, kPreemptRun, work / "reference");
  ASSERT_FALSE(stopped.id.empty());
  ASSERT_FALSE(reference.id.empty());

  // Wait until the job runs, has printed its first epoch and has written a checkpoint.
  auto start = Clock::now();
  fs::path checkpoints;
  std::string first;
  while (seconds_since(start) < 120 && !stopped.finished()) {
    poll(stopped);
    poll(reference);
    if (stopped.state == "RUNNING" && !stopped.name.empty()) {
      checkpoints = work / "stopped" / "checkpoints" / (stopped.name + "-" + stopped.id);
      first = newest_checkpoint(checkpoints);
      if (!first.empty() && stopped.output().find("epoch 1/") != std::string::npos) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(stopped.state, "RUNNING") << stopped.summary() << "\n" << tail(stopped.output());
  ASSERT_FALSE(first.empty()) << "no checkpoint in " << checkpoints << " after 120 s\n" << tail(stopped.output());
  std::printf("job %s running for %.1f s with checkpoint %s: scancel --batch --signal=USR1\n", stopped.id.c_str(),
              seconds_since(stopped.submitted), first.c_str());
  test::RunResult sig = slurm("scancel --batch --signal=USR1 " + stopped.id);
  ASSERT_EQ(sig.exit_code, 0) << sig.out << sig.err;
  const auto signalled = Clock::now();

  const bool in_time = wait_all({&stopped, &reference}, 300);
  const std::string out = stopped.output();
  std::printf("%s\n%s\nfinished %.1f s after the signal\n", stopped.summary().c_str(), reference.summary().c_str(),
              seconds_since(signalled));
  SCOPED_TRACE("output " + stopped.out_path + ":\n" + tail(out, 6000));
  ASSERT_TRUE(in_time) << "the jobs did not finish within 300 s of the signal";
  EXPECT_EQ(stopped.state, "COMPLETED");
  EXPECT_EQ(stopped.restarts, 1) << "the job should have requeued itself once";
  EXPECT_EQ(count_of(out, "got SIGUSR1: sending SIGUSR1 to the step"), 1u);
  EXPECT_EQ(count_of(out, "baton: stopped after update"), 1u) << "baton's own line on its checkpointed stop";
  EXPECT_EQ(count_of(out, "the step checkpointed and stopped (exit 75)"), 1u);
  EXPECT_EQ(count_of(out, "requeued job " + stopped.id), 1u);
  EXPECT_EQ(count_of(out, "start 2 of job " + stopped.name), 1u);
  // Resumed, not started again: the first epoch (done before the signal) and the last, once each.
  EXPECT_EQ(count_of(out, "epoch 1/" + std::to_string(kPreemptEpochs) + " "), 1u);
  EXPECT_EQ(count_of(out, "epoch " + std::to_string(kPreemptEpochs) + "/" + std::to_string(kPreemptEpochs) + " "), 1u);
  EXPECT_EQ(reference.state, "COMPLETED") << tail(reference.output());
  EXPECT_EQ(reference.restarts, 0);

  // The final checkpoints of both runs, exported, must be the same bytes.
  const fs::path ref_checkpoints = work / "reference" / "checkpoints" / (reference.name + "-" + reference.id);
  const std::string last = newest_checkpoint(checkpoints), ref_last = newest_checkpoint(ref_checkpoints);
  std::printf("final checkpoints: %s (first seen %s) and %s\n", last.c_str(), first.c_str(), ref_last.c_str());
  ASSERT_FALSE(last.empty()) << "no checkpoint in " << checkpoints;
  ASSERT_FALSE(ref_last.empty()) << "no checkpoint in " << ref_checkpoints << "\n" << tail(reference.output());
  EXPECT_EQ(last, ref_last);
  const fs::path a = work / "stopped.safetensors", b = work / "reference.safetensors";
  for (const auto& [from, to] : {std::pair{checkpoints / last, a}, std::pair{ref_checkpoints / ref_last, b}}) {
    test::RunResult r = test::run_baton("export " + from.string() + " --output " + to.string(), 120);
    std::printf("baton export %s: exit %d\n%s%s", from.c_str(), r.exit_code, r.out.c_str(), r.err.c_str());
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    ASSERT_TRUE(fs::exists(to));
  }
  const std::string bytes_a = slurp(a), bytes_b = slurp(b);
  std::printf("exported: %zu and %zu bytes\n", bytes_a.size(), bytes_b.size());
  EXPECT_GT(bytes_a.size(), 0u);
  EXPECT_TRUE(bytes_a == bytes_b) << "the resumed run's final weights differ from the uninterrupted run's";
  fs::remove_all(work);
}

}  // namespace
}  // namespace baton
