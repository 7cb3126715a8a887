#include "tasks/dependency_graph.h"

#include <algorithm>
#include <queue>

namespace ds::tasks {

int DependencyGraph::AddNode(const std::string& key, int64_t weight, int priority,
                             bool is_virtual) {
  auto it = index_.find(key);
  if (it != index_.end()) return it->second;
  int idx = static_cast<int>(nodes_.size());
  nodes_.push_back(Node{key, weight, priority, is_virtual, {}, {}});
  index_.emplace(key, idx);
  return idx;
}

void DependencyGraph::AddEdge(int prerequisite, int dependent, EdgeKind kind) {
  nodes_[prerequisite].out.emplace_back(dependent, kind);
  nodes_[dependent].in.emplace_back(prerequisite, kind);
}

std::optional<int> DependencyGraph::Find(const std::string& key) const {
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> DependencyGraph::Path(int from, int to) const {
  // Iterative DFS recording parents; paths are short in practice.
  std::vector<int> parent(nodes_.size(), -2);
  std::vector<int> stack{from};
  parent[from] = -1;
  while (!stack.empty()) {
    int n = stack.back();
    stack.pop_back();
    if (n == to) {
      std::vector<std::string> path;
      for (int cur = to; cur != -1; cur = parent[cur]) path.push_back(nodes_[cur].key);
      std::reverse(path.begin(), path.end());
      return path;
    }
    for (const auto& [next, kind] : nodes_[n].out) {
      if (parent[next] == -2) {
        parent[next] = n;
        stack.push_back(next);
      }
    }
  }
  return {};
}

std::vector<std::string> DependencyGraph::FindCycle() const {
  // Colour DFS: 0 unvisited, 1 on stack, 2 done.
  std::vector<int> colour(nodes_.size(), 0);
  std::vector<int> parent(nodes_.size(), -1);
  for (size_t root = 0; root < nodes_.size(); ++root) {
    if (colour[root]) continue;
    std::vector<std::pair<int, size_t>> stack{{static_cast<int>(root), 0}};
    colour[root] = 1;
    while (!stack.empty()) {
      auto& [n, next_edge] = stack.back();
      if (next_edge < nodes_[n].out.size()) {
        int m = nodes_[n].out[next_edge++].first;
        if (colour[m] == 0) {
          colour[m] = 1;
          parent[m] = n;
          stack.emplace_back(m, 0);
        } else if (colour[m] == 1) {
          std::vector<std::string> cycle{nodes_[m].key};
          for (int cur = n; cur != m; cur = parent[cur]) cycle.push_back(nodes_[cur].key);
          cycle.push_back(nodes_[m].key);
          std::reverse(cycle.begin(), cycle.end());
          return cycle;
        }
      } else {
        colour[n] = 2;
        stack.pop_back();
      }
    }
  }
  return {};
}

std::vector<std::string> DependencyGraph::TopologicalOrder() const {
  auto cmp = [this](int a, int b) {
    // priority_queue pops the largest: make "larger" mean "comes first".
    const Node& x = nodes_[a];
    const Node& y = nodes_[b];
    if (x.priority != y.priority) return x.priority < y.priority;
    return x.key > y.key;
  };
  std::priority_queue<int, std::vector<int>, decltype(cmp)> ready(cmp);
  std::vector<size_t> indegree(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    indegree[i] = nodes_[i].in.size();
    if (indegree[i] == 0) ready.push(static_cast<int>(i));
  }
  std::vector<std::string> order;
  while (!ready.empty()) {
    int n = ready.top();
    ready.pop();
    if (!nodes_[n].is_virtual) order.push_back(nodes_[n].key);
    for (const auto& [m, kind] : nodes_[n].out) {
      if (--indegree[m] == 0) ready.push(m);
    }
  }
  return order;
}

std::vector<int> DependencyGraph::BlockingOrder() const {
  std::vector<size_t> indegree(nodes_.size(), 0);
  for (const auto& n : nodes_) {
    for (const auto& [m, kind] : n.out) indegree[m] += kind == EdgeKind::kBlocking;
  }
  std::vector<int> order;
  order.reserve(nodes_.size());
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (indegree[i] == 0) order.push_back(static_cast<int>(i));
  }
  for (size_t head = 0; head < order.size(); ++head) {
    for (const auto& [m, kind] : nodes_[order[head]].out) {
      if (kind == EdgeKind::kBlocking && --indegree[m] == 0) order.push_back(m);
    }
  }
  return order;
}

std::vector<std::vector<std::string>> DependencyGraph::Levels() const {
  // Virtual nodes pass their prerequisites' level through without adding one.
  std::vector<int> level(nodes_.size(), -1);
  std::vector<std::vector<std::string>> levels;
  for (int n : BlockingOrder()) {
    int best = -1;
    for (const auto& [p, kind] : nodes_[n].in) {
      if (kind == EdgeKind::kBlocking) best = std::max(best, level[p]);
    }
    if (nodes_[n].is_virtual) {
      level[n] = best;
      continue;
    }
    level[n] = best + 1;
    if (static_cast<size_t>(level[n]) >= levels.size()) levels.resize(level[n] + 1);
    levels[level[n]].push_back(nodes_[n].key);
  }
  for (auto& l : levels) std::sort(l.begin(), l.end());
  return levels;
}

DependencyGraph::CriticalPath DependencyGraph::LongestPath() const {
  std::vector<int64_t> dist(nodes_.size(), 0);
  std::vector<int> prev(nodes_.size(), -1);
  int best_end = -1;
  for (int n : BlockingOrder()) {
    int64_t in_best = 0;
    int in_prev = -1;
    for (const auto& [p, kind] : nodes_[n].in) {
      if (kind != EdgeKind::kBlocking) continue;
      if (in_prev == -1 || dist[p] > in_best ||
          (dist[p] == in_best && nodes_[p].key < nodes_[in_prev].key)) {
        in_best = dist[p];
        in_prev = p;
      }
    }
    dist[n] = in_best + nodes_[n].weight;
    prev[n] = in_prev;
    if (!nodes_[n].is_virtual &&
        (best_end == -1 || dist[n] > dist[best_end] ||
         (dist[n] == dist[best_end] && nodes_[n].key < nodes_[best_end].key))) {
      best_end = n;
    }
  }
  CriticalPath out;
  if (best_end == -1) return out;
  out.weight = dist[best_end];
  for (int cur = best_end; cur != -1; cur = prev[cur]) {
    if (!nodes_[cur].is_virtual) out.nodes.push_back(nodes_[cur].key);
  }
  std::reverse(out.nodes.begin(), out.nodes.end());
  return out;
}

}  // namespace ds::tasks
