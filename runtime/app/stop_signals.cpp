// Implementation of StopSignals with sigaction; the handler only stores the signal's number.
#include "runtime/app/stop_signals.hpp"

#include <csignal>

namespace baton {
namespace {

volatile std::sig_atomic_t g_received = 0;
struct sigaction g_previous_usr1, g_previous_term;

void record(int signal) { g_received = signal; }

}  // namespace

StopSignals::StopSignals(bool install) : installed_(install) {
  if (!installed_) return;
  g_received = 0;
  struct sigaction action {};
  action.sa_handler = record;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, &g_previous_usr1);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignals::~StopSignals() {
  if (!installed_) return;
  sigaction(SIGUSR1, &g_previous_usr1, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int StopSignals::received() const { return g_received; }

}  // namespace baton
