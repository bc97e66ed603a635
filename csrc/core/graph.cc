#include "core/graph.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <random>

namespace minisinga {

namespace {

// Read from $MINISINGA_GRAPH_SHUFFLE on first use (a test setting for whole suites).
std::atomic<uint64_t>& Shuffle() {
  static std::atomic<uint64_t> seed{static_cast<uint64_t>(
      EnvCount("MINISINGA_GRAPH_SHUFFLE", 0, "a non-negative integer seed"))};
  return seed;
}

}  // namespace

uint64_t SetGraphShuffle(uint64_t seed) { return Shuffle().exchange(seed); }

std::vector<size_t> Graph::DependencyOrder() const {
  const size_t n = nodes_.size();
  std::vector<std::vector<size_t>> out(n);
  std::vector<int> indeg(n, 0);
  auto edge = [&](size_t from, size_t to) {
    if (from == to) return;
    out[from].push_back(to);
    indeg[to]++;
  };
  std::unordered_map<Block*, long> last_writer;
  std::unordered_map<Block*, std::vector<size_t>> readers;  // since the last write
  long last_sync = -1;
  std::vector<size_t> since_sync;
  for (size_t i = 0; i < n; i++) {
    const Node& nd = nodes_[i];
    if (last_sync >= 0) edge(last_sync, i);
    if (nd.reads.empty() && nd.writes.empty()) {  // a sync node orders everything around it
      for (size_t j : since_sync) edge(j, i);
      since_sync.clear();
      last_sync = static_cast<long>(i);
      continue;
    }
    since_sync.push_back(i);
    for (auto& b : nd.reads) {  // read after write
      auto it = last_writer.find(b.get());
      if (it != last_writer.end()) edge(it->second, i);
    }
    for (auto& b : nd.writes) {
      auto it = last_writer.find(b.get());
      if (it != last_writer.end()) edge(it->second, i);  // write after write
      for (size_t r : readers[b.get()]) edge(r, i);      // write after read
    }
    for (auto& b : nd.reads) readers[b.get()].push_back(i);
    for (auto& b : nd.writes) {
      last_writer[b.get()] = static_cast<long>(i);
      readers[b.get()].clear();
    }
  }
  // Kahn's algorithm taking the earliest recorded ready node (a min-heap), or, shuffled,
  // any ready node. The earliest first keeps each intermediate's life as short as the
  // recording made it: SINGA's level-by-level (FIFO) order ran every op that reads only
  // inputs and weights first, which held more intermediates at once than eager mode.
  std::vector<size_t> ready;
  const auto later = std::greater<size_t>();
  for (size_t i = 0; i < n; i++)
    if (indeg[i] == 0) ready.push_back(i);
  std::make_heap(ready.begin(), ready.end(), later);
  std::vector<size_t> order;
  order.reserve(n);
  const uint64_t shuffle = Shuffle().load();
  std::mt19937_64 rng(shuffle);
  while (!ready.empty()) {
    size_t i;
    if (shuffle) {
      std::swap(ready[rng() % ready.size()], ready.back());
      i = ready.back();
      ready.pop_back();
    } else {
      std::pop_heap(ready.begin(), ready.end(), later);
      i = ready.back();
      ready.pop_back();
    }
    order.push_back(i);
    for (size_t j : out[i]) {
      if (--indeg[j] == 0) {
        ready.push_back(j);
        if (!shuffle) std::push_heap(ready.begin(), ready.end(), later);
      }
    }
  }
  MS_CHECK(order.size() == n, "RunGraph: the recorded graph has a dependency cycle");
  return order;
}

GraphPlan Graph::Plan(bool sequential) const {
  GraphPlan plan;
  const size_t n = nodes_.size();
  if (sequential) {
    plan.order.resize(n);
    for (size_t i = 0; i < n; i++) plan.order[i] = i;
  } else {
    plan.order = DependencyOrder();
  }
  // A block is internal when only the graph references it and its first use writes it;
  // its memory is then needed only between its first write and its last use.
  struct Use {
    long holders = 0;  // shared_ptr copies held by the graph's nodes
    long first = -1, last = -1;
    bool first_is_write = false;
    const BlockPtr* any = nullptr;
  };
  std::unordered_map<Block*, Use> uses;
  for (size_t step = 0; step < n; step++) {
    const Node& nd = nodes_[plan.order[step]];
    for (int pass = 0; pass < 2; pass++) {
      const auto& blocks = pass == 0 ? nd.reads : nd.writes;
      for (auto& b : blocks) {
        Use& u = uses[b.get()];
        if (u.first < 0) {
          u.first = static_cast<long>(step);
          u.first_is_write = pass == 1;
        }
        u.last = static_cast<long>(step);
        u.holders++;
        u.any = &b;
      }
    }
  }
  // Reads are visited first, so a block both read and written by its first node is
  // read-first: its value from the previous step matters and it is kept.
  plan.release.assign(n, {});
  std::vector<std::vector<std::pair<Block*, size_t>>> alloc_at(n);
  for (auto& kv : uses) {
    Block* b = kv.first;
    const Use& u = kv.second;
    // use_count counts every shared_ptr: the graph's and everyone else's (Python).
    long outside = u.any->use_count() - u.holders;
    if (outside == 0 && u.first_is_write) {
      plan.release[u.last].push_back(b);
      alloc_at[u.first].push_back({b, CachingPool::RoundUp(b->size())});
    } else {
      plan.persistent_bytes += CachingPool::RoundUp(b->size());
    }
  }
  size_t live = 0;
  for (size_t step = 0; step < n; step++) {
    for (auto& a : alloc_at[step]) live += a.second;
    plan.planned_peak = std::max(plan.planned_peak, live);
    for (Block* b : plan.release[step]) live -= CachingPool::RoundUp(b->size());
  }
  return plan;
}

void Graph::AddCheck(Node node) {
  for (const Node& nd : nodes_)
    for (const BlockPtr& w : nd.writes)
      for (const BlockPtr& r : node.reads)
        if (w == r) return Add(std::move(node));  // reads what the step computes
  nodes_.insert(nodes_.begin() + static_cast<long>(checks_++), std::move(node));
  plan_valid_ = false;
  version_++;
}

void Graph::Run(Device* dev, bool sequential) {
  if (!plan_valid_ || plan_sequential_ != sequential) {
    plan_ = Plan(sequential);
    plan_valid_ = true;
    plan_sequential_ = sequential;
  }
  last_peak_ = plan_.planned_peak + plan_.persistent_bytes;
  if (!dev->ReplayGraph(*this)) Replay(dev);
  runs_++;
}

void Graph::Replay(Device* dev) {
  MS_CHECK(plan_valid_, "Graph::Replay: the graph has no plan; call Run");
  const GraphPlan& plan = plan_;
  const bool profile = dev->verbosity() > 0 && runs_ >= dev->skip_iterations();
  Context* ctx = dev->context();
  for (size_t step = 0; step < plan.order.size(); step++) {
    const Node& nd = nodes_[plan.order[step]];
    if (profile) {
      double t = dev->TimeOp(nd.fn);
      dev->RecordTime(dev->verbosity() >= 2 ? nd.name : (nd.phase.empty() ? "other" : nd.phase),
                      t);
    } else {
      nd.fn(ctx);
    }
    for (Block* b : plan.release[step]) b->Release();
  }
}

}  // namespace minisinga
