#include "tasks/dependency_graph.h"

#include <gtest/gtest.h>

#include "tasks/state_machine.h"

namespace ds::tasks {
namespace {

using K = DependencyGraph::EdgeKind;
using Strings = std::vector<std::string>;

TEST(DependencyGraphTest, FindsCycleAndPath) {
  DependencyGraph g;
  int a = g.AddNode("a"), b = g.AddNode("b"), c = g.AddNode("c");
  g.AddEdge(a, b, K::kBlocking);
  g.AddEdge(b, c, K::kSoft);
  EXPECT_TRUE(g.FindCycle().empty());
  EXPECT_EQ(g.Path(a, c), (Strings{"a", "b", "c"}));
  EXPECT_TRUE(g.Path(c, a).empty());
  g.AddEdge(c, a, K::kBlocking);
  auto cycle = g.FindCycle();
  ASSERT_EQ(cycle.size(), 4u);
  EXPECT_EQ(cycle.front(), cycle.back());
}

TEST(DependencyGraphTest, TopologicalOrderUsesPriorityThenKey) {
  DependencyGraph g;
  int a = g.AddNode("a", 1, 5);
  int b = g.AddNode("b", 1, 9);
  int c = g.AddNode("c", 1, 5);
  int d = g.AddNode("d", 1, 10);
  g.AddEdge(a, d, K::kBlocking);  // d must wait for a despite priority 10
  (void)b;
  (void)c;
  EXPECT_EQ(g.TopologicalOrder(), (Strings{"b", "a", "d", "c"}));
}

TEST(DependencyGraphTest, LevelsIgnoreSoftEdgesAndPassThroughVirtualNodes) {
  DependencyGraph g;
  int a = g.AddNode("a"), b = g.AddNode("b"), c = g.AddNode("c"), d = g.AddNode("d");
  int v = g.AddNode("v", 0, 0, true);
  g.AddEdge(a, v, K::kBlocking);
  g.AddEdge(v, b, K::kBlocking);  // a -> (virtual) -> b: b is one level after a
  g.AddEdge(b, c, K::kBlocking);
  g.AddEdge(a, d, K::kSoft);  // soft: d stays on level 0
  auto levels = g.Levels();
  ASSERT_EQ(levels.size(), 3u);
  EXPECT_EQ(levels[0], (Strings{"a", "d"}));
  EXPECT_EQ(levels[1], (Strings{"b"}));
  EXPECT_EQ(levels[2], (Strings{"c"}));
}

TEST(DependencyGraphTest, CriticalPathIsHeaviestBlockingChain) {
  DependencyGraph g;
  int a = g.AddNode("a", 3), b = g.AddNode("b", 10), c = g.AddNode("c", 2), d = g.AddNode("d", 4);
  int e = g.AddNode("e", 9);
  g.AddEdge(a, b, K::kBlocking);  // a+b = 13
  g.AddEdge(c, d, K::kBlocking);  // c+d = 6
  g.AddEdge(b, d, K::kBlocking);  // a+b+d = 17
  g.AddEdge(e, d, K::kSoft);      // soft edges do not count
  auto cp = g.LongestPath();
  EXPECT_EQ(cp.nodes, (Strings{"a", "b", "d"}));
  EXPECT_EQ(cp.weight, 17);
}

TEST(DependencyGraphTest, EmptyGraph) {
  DependencyGraph g;
  EXPECT_TRUE(g.TopologicalOrder().empty());
  EXPECT_TRUE(g.Levels().empty());
  EXPECT_TRUE(g.LongestPath().nodes.empty());
  EXPECT_TRUE(g.FindCycle().empty());
}

TEST(StateMachineTest, TaskTransitions) {
  EXPECT_TRUE(IsTaskTransitionAllowed("pending", "active"));
  EXPECT_TRUE(IsTaskTransitionAllowed("pending", "skipped"));
  EXPECT_FALSE(IsTaskTransitionAllowed("pending", "completed"));
  EXPECT_TRUE(IsTaskTransitionAllowed("active", "completed"));
  EXPECT_TRUE(IsTaskTransitionAllowed("active", "failed"));
  EXPECT_TRUE(IsTaskTransitionAllowed("active", "blocked"));
  EXPECT_TRUE(IsTaskTransitionAllowed("active", "pending"));
  EXPECT_TRUE(IsTaskTransitionAllowed("failed", "pending"));
  EXPECT_FALSE(IsTaskTransitionAllowed("failed", "active"));
  EXPECT_TRUE(IsTaskTransitionAllowed("blocked", "pending"));
  EXPECT_TRUE(IsTaskTransitionAllowed("blocked", "skipped"));
  EXPECT_TRUE(AllowedTaskTransitions("completed").empty());
  EXPECT_TRUE(AllowedTaskTransitions("skipped").empty());
  EXPECT_FALSE(IsTaskTransitionAllowed("completed", "pending"));
  EXPECT_FALSE(IsTaskTransitionAllowed("nonsense", "pending"));
}

TEST(StateMachineTest, PlanTransitions) {
  EXPECT_TRUE(IsPlanTransitionAllowed("draft", "active"));
  EXPECT_FALSE(IsPlanTransitionAllowed("draft", "completed"));
  EXPECT_FALSE(IsPlanTransitionAllowed("active", "completed"));
  EXPECT_TRUE(IsPlanTransitionAllowed("completed", "archived"));
  EXPECT_TRUE(AllowedPlanTransitions("archived").empty());
  EXPECT_TRUE(IsPlanOpen("draft"));
  EXPECT_FALSE(IsPlanOpen("cancelled"));
}

}  // namespace
}  // namespace ds::tasks
