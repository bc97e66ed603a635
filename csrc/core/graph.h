// A recorded step: nodes (closure, blocks read, blocks written) replayed from C++.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/device.h"

namespace minisinga {

struct Node {
  Device::Fn fn;
  std::vector<BlockPtr> reads;
  std::vector<BlockPtr> writes;
  std::string name;
  std::string phase;  // forward / backward / update ... as set while recording
  bool host = false;  // runs host code each time (a Python callable): never captured
};

struct GraphPlan {
  std::vector<size_t> order;                 // node indices in execution order
  std::vector<std::vector<Block*>> release;  // blocks to release after each step of `order`
  size_t planned_peak = 0;                   // bytes, internal blocks only
  size_t persistent_bytes = 0;               // blocks that live across steps
};

// For tests: a non-zero seed makes the dependency order pick among the ready nodes at random
// (seeded) instead of first-recorded-first, so a node that reads or writes a block without
// declaring it gets run in an order that shows it. Returns the previous seed (0: off).
uint64_t SetGraphShuffle(uint64_t seed);

class Graph {
 public:
  void Add(Node node) {
    host_nodes_ = host_nodes_ || node.host;
    nodes_.push_back(std::move(node));
    plan_valid_ = false;
    version_++;
  }
  // A check of the step's inputs (labels): placed after the earlier checks and before every
  // other node when no recorded node writes a block it reads, else appended as by Add. So a
  // replay in recorded order (or by dependencies) stops at it before anything else has run.
  void AddCheck(Node node);
  size_t size() const { return nodes_.size(); }
  const std::vector<Node>& nodes() const { return nodes_; }
  void Clear() {
    nodes_.clear();
    checks_ = 0;
    runs_ = 0;
    plan_valid_ = false;
    host_nodes_ = false;
    version_++;
  }
  // Runs every node in recorded (sequential) or dependency (level-by-level) order: plans,
  // then lets the device replay it its own way (Device::ReplayGraph) or calls Replay.
  void Run(Device* dev, bool sequential);
  // One pass over the planned nodes (with profiling and memory release). For devices that
  // replay a graph their own way; valid once Run has made the plan.
  void Replay(Device* dev);
  // Changes whenever nodes are added or cleared: a device keying state on the recorded graph
  // (a captured CUDA graph) compares it together with plan_sequential().
  uint64_t version() const { return version_; }
  bool plan_sequential() const { return plan_sequential_; }
  bool has_host_nodes() const { return host_nodes_; }
  // Plans execution order and memory release points for the current node list.
  GraphPlan Plan(bool sequential) const;
  int64_t runs() const { return runs_; }
  size_t last_planned_peak() const { return last_peak_; }
  std::string current_phase;

 private:
  std::vector<size_t> DependencyOrder() const;
  std::vector<Node> nodes_;
  size_t checks_ = 0;  // AddCheck's nodes at the front of nodes_
  // The plan is made at the first run after recording and kept: a block that nothing outside
  // the graph referenced then cannot gain an outside reference later.
  GraphPlan plan_;
  bool plan_valid_ = false;
  bool plan_sequential_ = false;
  bool host_nodes_ = false;
  uint64_t version_ = 0;
  int64_t runs_ = 0;
  size_t last_peak_ = 0;
};

}  // namespace minisinga
