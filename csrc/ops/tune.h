// Autotuning: an op with several ways to compute the same result (the convolution plans in
// ops/conv.cc) times each on its device the first time a shape is seen, and keeps using the
// fastest for that shape on that device, as cuDNN's benchmark mode does. Off by default
// (the heuristic choice, identical from run to run); $MINISINGA_CONV_AUTOTUNE=1 or
// SetConvAutotune turns it on. Timing is the device's: CUDA events on a GPU, the wall clock
// on a CPU. While a CUDA graph is being captured nothing can be timed, so an untuned key
// runs its first candidate (the heuristic one) there and stays untuned.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/device.h"

namespace minisinga {
namespace ops {

bool ConvAutotuneOn();
// Returns the previous setting; results already tuned are kept.
bool SetConvAutotune(bool on);

struct TuneResult {
  std::string key;                 // the op and its shapes
  std::vector<std::string> names;  // the candidates
  std::vector<double> seconds;     // each one's best time
  int chosen = 0;                  // the fastest
};

// Runs candidate i of `names` as run(ctx, i): the one tuned for (ctx's device, key), after
// timing all of them (each once untimed, then the best of two timed runs) if this is the
// first call for that key. Every candidate must compute the same outputs from the same
// inputs and write all of them (no accumulation into what a previous run left): the chosen
// one runs last. With one name or none, candidate 0 just runs.
void RunTuned(Context* ctx, const std::string& key, const std::vector<std::string>& names,
              const std::function<void(Context*, int)>& run);

// For tests: while `name` is not empty, a RunTuned call whose candidates include `name` runs
// that one, untimed and remembering nothing (the others tune as usual). Returns the previous.
std::string ForceCandidate(const std::string& name);

// What has been tuned on `dev`, in key order.
std::vector<TuneResult> TuneResults(const Device* dev);
// Forgets every tuned choice (all devices).
void ClearTuneResults();

}  // namespace ops
}  // namespace minisinga
