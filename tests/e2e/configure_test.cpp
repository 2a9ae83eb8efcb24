// A fresh machine's first failure is CMake's: with a dependency missing (hidden from find_package
// here), configuring baton must stop with one sentence that names the Debian package to install.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <regex>

#include "tests/support/run.hpp"

namespace baton {
namespace {

namespace fs = std::filesystem;

struct Missing {
  std::string cmake_package;   // what find_package looks for
  std::string debian_package;  // what the message must name
};
void PrintTo(const Missing& m, std::ostream* out) { *out << m.cmake_package; }

class MissingDependency : public ::testing::TestWithParam<Missing> {};

TEST_P(MissingDependency, ConfigureNamesTheDebianPackage) {
  const Missing& m = GetParam();
  const fs::path build = fs::temp_directory_path() / ("baton_configure_" + m.cmake_package + std::to_string(::getpid()));
  test::RunResult r = test::run_command("cmake -S " BATON_SOURCE_DIR " -B " + build.string() +
                                            " -DCMAKE_DISABLE_FIND_PACKAGE_" + m.cmake_package + "=ON",
                                        300);
  fs::remove_all(build);
  const std::string said = std::regex_replace(r.err, std::regex(R"(\s+)"), " ");  // CMake wraps its messages
  std::printf("  %s\n", said.substr(said.find("Not found")).substr(0, 200).c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(said.find("Install Debian's " + m.debian_package + " (sudo apt-get install " + m.debian_package + ")"),
            std::string::npos)
      << r.err;
}

INSTANTIATE_TEST_SUITE_P(Packages, MissingDependency,
                         ::testing::Values(Missing{"MPI", "libopenmpi-dev"},
                                           Missing{"Boost", "libboost-program-options-dev"},
                                           Missing{"ZLIB", "zlib1g-dev"}, Missing{"nlohmann_json", "nlohmann-json3-dev"},
                                           Missing{"OpenCL", "ocl-icd-opencl-dev"}, Missing{"dnnl", "libdnnl-dev"}),
                         [](const auto& info) { return info.param.cmake_package; });

}  // namespace
}  // namespace baton
