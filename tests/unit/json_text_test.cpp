// JsonWriter and AppendJsonString must write exactly what ToJsonString (and,
// for strings, Boost.JSON's own serializer) writes for the same value: REST
// responses come from both, and clients compare them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/json.h"
#include "tasks/codec.h"
#include "tasks/model.h"

namespace ds {
namespace {

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

TEST(JsonTextTest, EveryByteIsEscapedAsBoostJsonEscapesIt) {
  for (int b = 0; b < 256; ++b) {
    std::string s = "a";
    s += static_cast<char>(b);
    s += "z";
    EXPECT_EQ(Quoted(s), json::serialize(json::value(json::string(s)))) << "byte " << b;
  }
  // Longer text is scanned eight bytes at a time: every byte at every
  // position of a word, between plain ASCII and between multi-byte UTF-8.
  for (const char* fill : {"x", "\xc3\xa9"}) {
    for (int b = 0; b < 256; ++b) {
      for (size_t pos = 0; pos < 20; ++pos) {
        std::string s;
        while (s.size() < 24) s += fill;
        s.insert(pos, 1, static_cast<char>(b));
        ASSERT_EQ(Quoted(s), json::serialize(json::value(json::string(s))))
            << "byte " << b << " at " << pos;
      }
    }
  }
  const std::string mixed = "tab\there \"quoted\" back\\slash \x01\x1f\x7f é ✓ 🙂 </script>";
  EXPECT_EQ(Quoted(mixed), json::serialize(json::value(json::string(mixed))));
  EXPECT_EQ(Quoted(""), "\"\"");
  EXPECT_EQ(Quoted("\n"), "\"\\n\"");
  EXPECT_EQ(Quoted(std::string_view("\0", 1)), "\"\\u0000\"");
}

TEST(JsonTextTest, WritesWhatToJsonStringWritesForTheSameValue) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Member("name", std::string("n\"x"));
  w.Member("count", int64_t{-42});
  w.Member("small", 7);
  w.Key("ratio");
  w.Double(0.1);
  w.Key("big");
  w.Double(1e300);
  w.Key("nan");
  w.Double(std::nan(""));
  w.Key("whole");
  w.Double(3.0);
  w.Member("yes", true);
  w.Member("absent", std::optional<std::string>());
  w.Member("present", std::optional<int64_t>(5));
  w.Member("list", std::vector<std::string>{"a", "b\tc"});
  w.Member("empty_list", std::vector<std::string>{});
  w.Key("empty_object");
  w.BeginObject();
  w.EndObject();
  w.Key("nested");
  w.BeginArray();
  w.BeginObject();
  w.Key("k");
  w.Null();
  w.EndObject();
  w.Int(std::numeric_limits<int64_t>::min());
  w.Value(json::parse(R"({"x":[1,2.5,"s",null,false,{"y":{}}]})"));
  w.EndArray();
  w.EndObject();

  json::object expected;
  expected["name"] = "n\"x";
  expected["count"] = -42;
  expected["small"] = 7;
  expected["ratio"] = 0.1;
  expected["big"] = 1e300;
  expected["nan"] = std::nan("");
  expected["whole"] = 3.0;
  expected["yes"] = true;
  expected["absent"] = nullptr;
  expected["present"] = 5;
  expected["list"] = json::array{"a", "b\tc"};
  expected["empty_list"] = json::array{};
  expected["empty_object"] = json::object{};
  expected["nested"] =
      json::array{json::object{{"k", nullptr}}, std::numeric_limits<int64_t>::min(),
                  json::parse(R"({"x":[1,2.5,"s",null,false,{"y":{}}]})")};
  EXPECT_EQ(out, ToJsonString(expected));
  // And it is JSON that parses back to the same members.
  json::value back = json::parse(out);
  EXPECT_EQ(back.at("ratio").as_double(), 0.1);
  EXPECT_TRUE(back.at("nan").is_null());
  EXPECT_EQ(back.at("list").as_array().size(), 2u);
}

TEST(JsonTextTest, TaskTextEqualsTheTaskObjectSerialised) {
  tasks::Task bare;
  bare.id = "tsk_1";
  bare.title = "t";

  tasks::Task full;
  full.id = "tsk_01M8BM7YXQ0MY5SYRVASETVC0B";
  full.phase_id = "phs_2";
  full.plan_id = "pln_3";
  full.title = "Fix \"the\" parser\n(line 2) é";
  full.description = std::string("control \x02 and tab\t");
  full.status = "active";
  full.priority = 9;
  full.max_context_tokens = 1LL << 40;
  full.assigned_agent = "agent-7";
  full.input_files = {"src/a.cpp", "src/b\\c.h"};
  full.output_files = {};
  full.acceptance_criteria = {"passes", ""};
  full.notes = "n";
  full.error_log = "e";
  full.retry_count = 2;
  full.lease_owner = "agent-7";
  full.lease_expires_at = "2026-11-26T10:00:00.000Z";
  full.version = 12;
  full.started_at = "2026-11-26T09:00:00.000Z";
  full.actual_duration_minutes = 3;
  full.context_tokens_used = 0;
  full.created_at = "c";
  full.updated_at = "u";
  full.depends_on = {{"tsk_a", "blocking"}, {"tsk_b", "soft"}};

  for (const tasks::Task* t : {&bare, &full}) {
    std::string text;
    JsonWriter w(text);
    tasks::WriteJson(*t, w);
    EXPECT_EQ(text, ToJsonString(tasks::ToJson(*t)));
  }

  std::string text;
  JsonWriter w(text);
  tasks::WriteJson(full, w);
  json::value v = json::parse(text);
  EXPECT_EQ(v.at("title").as_string(), full.title);
  EXPECT_EQ(v.at("depends_on").at(1).at("kind").as_string(), "soft");
  EXPECT_TRUE(v.at("completed_at").is_null());
  EXPECT_EQ(v.at("context_tokens_used").as_int64(), 0);
  EXPECT_EQ(v.at("max_context_tokens").as_int64(), 1LL << 40);
  EXPECT_EQ(v.as_object().size(), 29u);
}

// The reference: what the full parser makes of a stored list.
std::vector<std::string> ParsedList(const std::string& text) {
  std::vector<std::string> out;
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& item : v.get_array()) {
    if (item.is_string()) out.emplace_back(item.get_string());
  }
  return out;
}

TEST(JsonTextTest, StoredStringListsDecodeAsTheParserDecodesThem) {
  const std::vector<std::string> cases = {
      "[]",
      "[\"\"]",
      "[\"a\"]",
      "[\"src/a.cpp\",\"é ✓\",\"x y\"]",
      "[\"a\\\"b\",\"c\\\\d\"]",  // escapes: the full parser's job
      "[\"a\\u00e9\"]",
      "[ \"a\" , \"b\" ]",
      "[\"a\",1,null,\"b\"]",
      "[\"a\",]",
      "[\"a\"\"b\"]",
      "[\"a\"",
      "\"a\"",
      "{\"a\":1}",
      "[\"tab\there\"]",  // a raw control byte: invalid JSON
      "[\"\xff\"]",       // invalid UTF-8
      "[\"\xc3\xa9\"]",
      "",
      "[",
      "]",
      "not json",
  };
  for (const auto& text : cases) {
    EXPECT_EQ(DecodeStringList(text), ParsedList(text)) << text;
  }
  // Round trip through the encoder, with strings that need escapes and not.
  const std::vector<std::string> lists[] = {{}, {"a", "b"}, {"q\"uote", "back\\slash", "nl\n"}};
  for (const auto& list : lists) {
    EXPECT_EQ(DecodeStringList(EncodeStringList(list)), list);
  }
}

}  // namespace
}  // namespace ds
