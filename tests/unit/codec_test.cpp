#include "tasks/codec.h"

#include <gtest/gtest.h>

namespace ds::tasks {
namespace {

json::value J(std::string_view s) {
  return ParseJson(s).value();
}

TEST(CodecTest, TaskInputDefaultsAndValidation) {
  auto in = DecodeTaskInput(J(R"({"title":"Write parser"})"));
  ASSERT_TRUE(in.ok()) << in.status().ToString();
  EXPECT_EQ(in->task_type, "coding");
  EXPECT_EQ(in->max_duration_minutes, 10);
  EXPECT_FALSE(in->estimated_minutes.has_value());

  auto unknown = DecodeTaskInput(J(R"({"title":"x","colour":"red"})"));
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("colour"), std::string::npos);

  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":""})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":"x","priority":11})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":"x","priority":"high"})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":"x","max_duration_minutes":11})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":"x","task_type":"dance"})")).ok());
  EXPECT_FALSE(
      DecodeTaskInput(J(R"({"title":"x","estimated_minutes":8,"max_duration_minutes":5})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"({"title":"x","depends_on":["not-an-id"]})")).ok());
  EXPECT_FALSE(DecodeTaskInput(J(R"([1,2])")).ok());
  EXPECT_FALSE(
      DecodeTaskInput(J(std::string(R"({"title":")") + std::string(201, 'a') + "\"}")).ok());
  // 200 multi-byte characters are fine: limits count characters, not bytes.
  std::string title;
  for (int i = 0; i < 200; ++i) title += "é";
  EXPECT_TRUE(DecodeTaskInput(J(R"({"title":")" + title + "\"}")).ok());
}

TEST(CodecTest, DependencyForms) {
  const std::string id = "tsk_01JABCDEFGHJKMNPQRSTVWXYZ0";
  auto a = DecodeDependency(J(R"({"depends_on":")" + id + "\"}"));
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->kind, "blocking");
  auto b = DecodeDependency(J(R"({"depends_on":{"id":")" + id + R"(","kind":"soft"}})"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->kind, "soft");
  EXPECT_FALSE(DecodeDependency(J(R"({"depends_on":")" + id + R"(","kind":"maybe"})")).ok());
  EXPECT_FALSE(DecodeDependency(J(R"({})")).ok());
}

TEST(CodecTest, MalformedAndDeepJson) {
  EXPECT_EQ(ParseJson("{").status().code(), StatusCode::kMalformed);
  std::string deep(100000, '[');
  EXPECT_EQ(ParseJson(deep).status().code(), StatusCode::kMalformed);
}

TEST(CodecTest, TaskPatchRefusesStatus) {
  auto p = DecodeTaskPatch(J(R"({"status":"completed"})"));
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("transition"), std::string::npos);
}

}  // namespace
}  // namespace ds::tasks
