// `baton report` draws a run from the files `baton train` wrote: the accuracy and loss curves from
// its metrics and each rank's compute, communication and idle time per update from its timeline.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

bool is_png(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string magic(8, '\0');
  in.read(magic.data(), 8);
  return in && magic == "\x89PNG\r\n\x1a\n" && fs::file_size(path) > 1000;
}

TEST(Report, DrawsTheCurvesAndTheRanksOfARun) {
  if (test::run_command("/usr/bin/python3 -c 'import matplotlib'", 60).exit_code != 0)
    GTEST_SKIP() << "matplotlib is missing (apt-get install python3-matplotlib)";
  const fs::path dir = fs::temp_directory_path() / ("baton_report_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  test::RunResult trained = test::run_baton("train --dataset synthetic --train-size 512 --test-size 64 --epochs 2 "
                                            "--threads 1 --stages 2 --pipeline stale --emulate --log-every 1 --metrics " +
                                            (dir / "m.jsonl").string() + " --timeline " + (dir / "t.json").string());
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  test::RunResult report = test::run_baton("report " + (dir / "m.jsonl").string() + " " + (dir / "t.json").string() +
                                           " --output " + (dir / "report").string());
  std::printf("%s", report.out.c_str());
  EXPECT_EQ(report.exit_code, 0) << report.err;
  for (const char* picture : {"accuracy.png", "loss.png", "ranks.png"})
    EXPECT_TRUE(is_png(dir / "report" / picture)) << picture;

  test::RunResult missing = test::run_baton("report " + (dir / "nothing.jsonl").string() + " --output " +
                                            (dir / "report").string());
  fs::remove_all(dir);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
}

}  // namespace
}  // namespace baton
