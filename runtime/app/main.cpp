// The `baton` program: starts MPI, runs one command, and turns any error into one line with the
// rank on stderr followed by MPI_Abort, so that a failing rank ends the whole job.
#include <mpi.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <vector>

#include "runtime/app/checkpoint.hpp"
#include "runtime/app/cli.hpp"
#include "runtime/app/cost_profile.hpp"
#include "runtime/base/error.hpp"
#include "runtime/app/parallel_plan.hpp"
#include "runtime/app/simulate.hpp"
#include "runtime/app/trainer.hpp"

namespace {

// `baton report METRICS [TIMELINE] --output DIR` is bench/quality/report.py (matplotlib): the first
// folder of BATON_REPORT_SCRIPTS that has it, run by Debian's python3 in place of this process.
int run_report(int argc, char** argv) {
  std::stringstream folders(BATON_REPORT_SCRIPTS);
  for (std::string folder; std::getline(folders, folder, ':');) {
    const std::string script = folder + "/report.py";
    if (access(script.c_str(), R_OK) != 0) continue;
    std::vector<char*> args{const_cast<char*>("/usr/bin/python3"), const_cast<char*>(script.c_str())};
    args.insert(args.end(), argv + 2, argv + argc);
    args.push_back(nullptr);
    execv(args[0], args.data());
    std::fprintf(stderr, "baton: could not run /usr/bin/python3 %s: %s; install python3 and python3-matplotlib\n",
                 script.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "baton: report.py is in none of %s; reinstall baton or run bench/quality/report.py from its "
               "source tree\n", BATON_REPORT_SCRIPTS);
  return 1;
}

int run(const baton::Invocation& inv) {
  switch (inv.command) {
    case baton::Command::help:
    case baton::Command::version:
      std::cout << inv.help_text << "\n";
      return 0;
    case baton::Command::models:
      baton::print_model_zoo(std::cout);
      return 0;
    case baton::Command::train:
      return baton::run_training(inv.train).stopped ? baton::kStoppedExitStatus : 0;
    case baton::Command::export_model:
      baton::export_model(inv.export_model.checkpoint_dir, inv.export_model.output);
      return 0;
    case baton::Command::schedule:
      baton::print_schedule(inv.schedule, std::cout);
      return 0;
    case baton::Command::profile:
      if (inv.profile.network)
        baton::run_network_profile(inv.profile, std::cout);
      else
        baton::run_profile(inv.profile, std::cout);
      return 0;
    case baton::Command::simulate:
      baton::run_simulate(inv.simulate, std::cout);
      return 0;
    case baton::Command::bench: {
      nlohmann::json result = baton::run_bench(inv.bench);
      if (!result.is_null()) std::cout << result.dump() << std::endl;
      return 0;
    }
  }
  return 0;
}

// Ends the job: alone, by returning the code; with peers, by MPI_Abort so none of them hangs.
int fail(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "report") == 0) return run_report(argc, argv);  // no MPI needed
  // Open MPI's default non-blocking allreduce is slow for large gradients; its ring algorithm
  // averaged AlexNet's 115 MB over 2 ranks in 130 ms instead of 198 (README). A user's setting wins.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  baton::set_error_rank(rank);
  try {
    int code = run(baton::parse_command_line(argc, argv));
    MPI_Finalize();
    return code;
  } catch (const baton::Error& e) {
    return fail(baton::describe(e));
  } catch (const std::exception& e) {
    return fail("baton (rank " + std::to_string(rank) + "): internal error: " + e.what());
  }
}
