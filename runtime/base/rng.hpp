// Counter-based random numbers: every draw is a pure function of (key, index), so any rank,
// thread or replay of a microbatch draws the same values (initialisation, dropout, shuffling).
#pragma once

#include <cmath>
#include <cstdint>

namespace baton {

// SplitMix64 finaliser: a bijective 64-bit mixer.
constexpr uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr uint64_t mix_keys(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b)); }

// Uniform in [0, 1) from the top 24 bits, exactly representable as float. constexpr, so CUDA
// kernels draw the very same values (dropout masks agree between the CPU and GPU backends).
constexpr float uniform01(uint64_t key, uint64_t index) {
  return static_cast<float>(mix_keys(key, index) >> 40) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller on two independent uniforms.
inline double normal01(uint64_t key, uint64_t index) {
  double u1 = (static_cast<double>(mix_keys(key, 2 * index) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  double u2 = static_cast<double>(mix_keys(key, 2 * index + 1) >> 11) * (1.0 / 9007199254740992.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace baton
