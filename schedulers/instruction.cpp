// Readable one-word names of instructions, for schedule tables, timelines and error messages.
#include "schedulers/instruction.hpp"

#include <sstream>

#include "runtime/base/overloaded.hpp"

namespace baton::schedulers {
namespace {
std::string part_suffix(int part) { return part > 0 ? "." + std::to_string(part) : ""; }
}  // namespace

std::string to_string(const Instruction& instruction) {
  std::ostringstream out;
  std::visit(Overloaded{
                 [&](const LoadBatch& i) { out << "load " << i.microbatch << " s" << i.slot; },
                 [&](const Forward& i) {
                   out << "F" << i.microbatch << part_suffix(i.part) << " s" << i.slot << " v" << i.version;
                 },
                 [&](const BackwardData& i) {
                   out << "Bd" << i.microbatch << part_suffix(i.part) << " s" << i.slot << " v" << i.version;
                 },
                 [&](const BackwardWeights& i) { out << "Bw" << i.microbatch << part_suffix(i.part) << " s" << i.slot; },
                 [&](const SendActivation& i) { out << "send-act " << i.microbatch << " >r" << i.to; },
                 [&](const RecvActivation& i) { out << "recv-act " << i.microbatch << " <r" << i.from; },
                 [&](const SendGrad& i) { out << "send-grad " << i.microbatch << " >r" << i.to; },
                 [&](const RecvGrad& i) { out << "recv-grad " << i.microbatch << " <r" << i.from; },
                 [&](const StashWeights& i) { out << "stash " << i.microbatch; },
                 [&](const StartAverage& i) { out << "avg-start u" << i.update << part_suffix(i.part); },
                 [&](const WaitAverage& i) { out << "avg-wait u" << i.update << part_suffix(i.part); },
                 [&](const OptimizerStep& i) { out << "step u" << i.update << part_suffix(i.part); },
                 [&](const StartGather& i) { out << "gather-start u" << i.update << part_suffix(i.part); },
                 [&](const WaitGather& i) { out << "gather-wait u" << i.update << part_suffix(i.part); },
             },
             instruction);
  return out.str();
}

}  // namespace baton::schedulers
