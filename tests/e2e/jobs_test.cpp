// The launcher and every example configuration in jobs/configs run for real under mpirun, on
// synthetic data that overrides the files' data and length from the command line, for two epochs so
// that the hybrid configuration trains one of each kind (stale, then not pipelined).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

// Ranks a configuration needs: stages x replicas read from its file.
int ranks_of(const fs::path& ini) {
  std::ifstream in(ini);
  int stages = 1, replicas = 1;
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (std::regex_match(line, m, std::regex(R"(\s*stages\s*=\s*(\d+)\s*)"))) stages = std::stoi(m[1]);
    if (std::regex_match(line, m, std::regex(R"(\s*replicas\s*=\s*(\d+)\s*)"))) replicas = std::stoi(m[1]);
  }
  return stages * replicas;
}

TEST(Jobs, EveryExampleConfigurationRunsUnderMpirun) {
  int ran = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(BATON_SOURCE_DIR) / "jobs" / "configs")) {
    if (entry.path().extension() != ".ini") continue;
    const fs::path metrics = fs::temp_directory_path() / ("baton_jobs_" + entry.path().stem().string() + ".jsonl");
    const std::string command = "env BATON=" BATON_BINARY " OMP_NUM_THREADS=1 bash " BATON_SOURCE_DIR "/jobs/mpirun.sh " +
                                std::to_string(ranks_of(entry.path())) + " train --config " + entry.path().string() +
                                " --dataset synthetic --train-size 512 --test-size 128 --epochs 2 --metrics " +
                                metrics.string();
    test::RunResult r = test::run_command(command, 300);
    SCOPED_TRACE(command + "\n" + r.err);
    std::printf("%s: %s", entry.path().filename().c_str(), r.out.substr(r.out.rfind("epoch")).c_str());
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("epoch 2/2"), std::string::npos);
    EXPECT_TRUE(fs::exists(metrics));
    fs::remove(metrics);
    ++ran;
  }
  EXPECT_EQ(ran, 5);
}

}  // namespace
}  // namespace baton
