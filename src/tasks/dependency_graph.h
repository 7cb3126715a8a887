// DependencyGraph is a directed graph of work items: an edge runs from a
// prerequisite to its dependent. Blocking edges gate and constrain scheduling;
// soft edges only order (topological order, ready-list order). Virtual nodes
// (weight 0, e.g. "phase P is done") carry constraints between groups without
// appearing in results. Algorithms: cycle search, topological order with a
// priority tie-break, parallel levels and the critical path (longest
// weighted path over blocking edges). All O(V + E).
// Not thread-safe for mutation; const methods may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace ds::tasks {

class DependencyGraph {
 public:
  enum class EdgeKind { kBlocking, kSoft };

  // Returns the node index; keys are unique (a repeated key returns the old index).
  int AddNode(const std::string& key, int64_t weight = 0, int priority = 0,
              bool is_virtual = false);
  void AddEdge(int prerequisite, int dependent, EdgeKind kind);
  std::optional<int> Find(const std::string& key) const;
  size_t size() const { return nodes_.size(); }

  // A path from `from` to `to` following edges (keys, inclusive), or empty.
  // Adding prerequisite->dependent creates a cycle iff Path(dependent, prerequisite) exists.
  std::vector<std::string> Path(int from, int to) const;
  // Some cycle (keys, first == last), or empty when the graph is acyclic.
  std::vector<std::string> FindCycle() const;
  // Kahn's order over all edges; among available nodes the highest priority,
  // then the smallest key, comes first. Virtual nodes omitted. Requires acyclic.
  std::vector<std::string> TopologicalOrder() const;
  // levels[i] holds nodes whose longest blocking chain of real prerequisites
  // has length i: everything in one level can run in parallel.
  std::vector<std::vector<std::string>> Levels() const;

  struct CriticalPath {
    std::vector<std::string> nodes;
    int64_t weight = 0;
  };
  // The heaviest chain over blocking edges (ties: the smaller key first).
  CriticalPath LongestPath() const;

 private:
  struct Node {
    std::string key;
    int64_t weight;
    int priority;
    bool is_virtual;
    std::vector<std::pair<int, EdgeKind>> out;
    std::vector<std::pair<int, EdgeKind>> in;
  };
  // Order over blocking edges only (any valid one), for DP passes.
  std::vector<int> BlockingOrder() const;

  std::vector<Node> nodes_;
  std::unordered_map<std::string, int> index_;
};

}  // namespace ds::tasks
