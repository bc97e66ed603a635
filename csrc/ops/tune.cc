#include "ops/tune.h"

#include <atomic>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <utility>

#include "core/common.h"

namespace minisinga {
namespace ops {

namespace {

// -1: not read from the environment yet.
std::atomic<int> g_on{-1};

std::mutex g_mu;
std::map<std::pair<const Device*, std::string>, TuneResult> g_results;
std::string g_forced;  // ForceCandidate's name

}  // namespace

bool ConvAutotuneOn() {
  int on = g_on.load();
  if (on < 0) {
    const char* env = std::getenv("MINISINGA_CONV_AUTOTUNE");
    const std::string v = env ? env : "";
    MS_CHECK(v.empty() || v == "0" || v == "1",
             "MINISINGA_CONV_AUTOTUNE must be 0 or 1, got '" << v << "'");
    int expected = -1;
    g_on.compare_exchange_strong(expected, v == "1" ? 1 : 0);
    on = g_on.load();
  }
  return on == 1;
}

bool SetConvAutotune(bool on) {
  const bool before = ConvAutotuneOn();
  g_on.store(on ? 1 : 0);
  return before;
}

void RunTuned(Context* ctx, const std::string& key, const std::vector<std::string>& names,
              const std::function<void(Context*, int)>& run) {
  const int n = static_cast<int>(names.size());
  if (n <= 1) return run(ctx, 0);
  Device* dev = ctx->dev;
  const auto id = std::make_pair(static_cast<const Device*>(dev), key);
  int pick = -1;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (int i = 0; i < n && !g_forced.empty(); i++)
      if (names[i] == g_forced) pick = i;
    auto it = g_results.find(id);
    if (pick < 0 && it != g_results.end()) pick = it->second.chosen;
  }
  if (pick >= 0) return run(ctx, pick);
  if (dev->capturing()) return run(ctx, 0);
  TuneResult r;
  r.key = key;
  r.names = names;
  r.seconds.assign(n, std::numeric_limits<double>::infinity());
  for (int i = 0; i < n; i++) {
    run(ctx, i);  // untimed: first-use costs (pool growth, library set-up) stay out
    for (int rep = 0; rep < 2; rep++)
      r.seconds[i] = std::min(r.seconds[i], dev->TimeOp([&](Context* c) { run(c, i); }));
    if (r.seconds[i] < r.seconds[r.chosen]) r.chosen = i;
  }
  if (r.chosen != n - 1) run(ctx, r.chosen);
  std::lock_guard<std::mutex> lock(g_mu);
  g_results.emplace(id, std::move(r));
}

std::string ForceCandidate(const std::string& name) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::string before = g_forced;
  g_forced = name;
  return before;
}

std::vector<TuneResult> TuneResults(const Device* dev) {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<TuneResult> out;
  for (const auto& kv : g_results)
    if (kv.first.first == dev) out.push_back(kv.second);
  return out;
}

void ClearTuneResults() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_results.clear();
}

}  // namespace ops
}  // namespace minisinga
