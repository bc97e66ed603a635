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
};

struct GraphPlan {
  std::vector<size_t> order;                 // node indices in execution order
  std::vector<std::vector<Block*>> release;  // blocks to release after each step of `order`
  size_t planned_peak = 0;                   // bytes, internal blocks only
  size_t persistent_bytes = 0;               // blocks that live across steps
};

class Graph {
 public:
  void Add(Node node) {
    nodes_.push_back(std::move(node));
    plan_valid_ = false;
  }
  size_t size() const { return nodes_.size(); }
  const std::vector<Node>& nodes() const { return nodes_; }
  void Clear() {
    nodes_.clear();
    runs_ = 0;
    plan_valid_ = false;
  }
  // Runs every node in recorded (sequential) or dependency (level-by-level) order.
  void Run(Device* dev, bool sequential);
  // Plans execution order and memory release points for the current node list.
  GraphPlan Plan(bool sequential) const;
  int64_t runs() const { return runs_; }
  size_t last_planned_peak() const { return last_peak_; }
  std::string current_phase;

 private:
  std::vector<size_t> DependencyOrder() const;
  std::vector<Node> nodes_;
  // The plan is made at the first run after recording and kept: a block that nothing outside
  // the graph referenced then cannot gain an outside reference later.
  GraphPlan plan_;
  bool plan_valid_ = false;
  bool plan_sequential_ = false;
  int64_t runs_ = 0;
  size_t last_peak_ = 0;
};

}  // namespace minisinga
