// Overloaded{lambdas...}: one visitor from several lambdas, for std::visit over variants
// (layer specs, schedule instructions); a missing alternative is a compile error.
#pragma once

namespace baton {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace baton
