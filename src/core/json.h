// JSON helpers over Boost.JSON shared by every adapter (REST, MCP, CLI).
// ParseJson bounds nesting depth so hostile input cannot exhaust the stack.
// ObjectReader validates a request object field by field: it records the first
// type/range error, and Finish() reports fields it was never asked about, so
// every decoder rejects unknown fields with a message naming them.
// Not thread-safe (one reader per request).
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ds {

namespace json = boost::json;

// Malformed (400) for syntax errors or nesting deeper than `max_depth`.
Result<json::value> ParseJson(std::string_view text, size_t max_depth = 64);
std::string_view JsonKind(const json::value& v);  // "string", "number", ...

class ObjectReader {
 public:
  // `where` prefixes messages ("task", "body").
  ObjectReader(const json::object& obj, std::string where);

  bool Has(std::string_view key) const;
  // Each getter marks the key as known. A missing key yields nullopt (or an
  // error when `required`); null counts as missing unless noted.
  std::optional<std::string> String(std::string_view key, bool required, size_t min_len = 0,
                                    size_t max_len = 100000);
  std::optional<std::string> Enum(std::string_view key, bool required,
                                  const std::vector<std::string_view>& allowed);
  std::optional<int64_t> Int(std::string_view key, bool required, int64_t min, int64_t max);
  std::optional<double> Number(std::string_view key, bool required, double min, double max);
  std::optional<bool> Bool(std::string_view key, bool required);
  std::optional<std::vector<std::string>> StringArray(std::string_view key, bool required,
                                                      size_t max_items = 1000,
                                                      size_t max_len = 10000);
  // Any JSON value (e.g. metadata); marks it known.
  const json::value* Raw(std::string_view key);
  // True when the key is present with an explicit null (PATCH "clear this").
  bool IsNull(std::string_view key) const;
  void Ignore(std::string_view key) { known_.insert(std::string(key)); }

  void Fail(std::string_view key, std::string message);
  bool failed() const { return !first_error_.ok(); }
  // First recorded error, else unknown fields, else OK.
  Status Finish() const;

 private:
  const json::value* Lookup(std::string_view key, bool required);

  const json::object& obj_;
  std::string where_;
  std::set<std::string, std::less<>> known_;
  Status first_error_;
};

// InvalidArgument ("<what> must be a JSON object, got array") unless `v` is an object.
Result<const json::object*> RequireObject(const json::value& v, std::string_view what);

// String lists as stored in JSON text columns ('["a","b"]'); decoding skips
// anything that is not a string and yields empty on malformed text.
json::array ToJsonArray(const std::vector<std::string>& v);
std::string EncodeStringList(const std::vector<std::string>& v);
std::vector<std::string> DecodeStringList(const std::string& text);

// An optional value as JSON, null when absent.
template <typename T>
json::value OptionalJson(const std::optional<T>& v) {
  return v ? json::value(*v) : json::value(nullptr);
}

// A number as JSON: integral values become integers (Boost.JSON would print
// 50.0 as 5E1), others stay doubles.
json::value JsonNumber(double d);
inline json::value OptionalJson(const std::optional<double>& v) {
  return v ? JsonNumber(*v) : json::value(nullptr);
}

// Compact serialisation; doubles in shortest round-trip decimal form.
std::string ToJsonString(const json::value& v);

// `s` as a quoted JSON string appended to `out`, escaped as Boost.JSON's
// serializer escapes it (\" \\ \b \f \n \r \t, other control bytes as
// \u00xx; everything else, UTF-8 included, as is).
void AppendJsonString(std::string& out, std::string_view s);

// JsonWriter appends compact JSON to a string as it goes, without building a
// json::value first: the hot responses (a task, a page of tasks) are written
// this way. What it writes is byte for byte what ToJsonString writes for the
// equivalent value. It places the commas itself; the caller pairs every
// Begin with its End and writes a Key before each member's value (neither is
// checked). Not thread-safe.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}

  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t v);
  void Double(double d);  // non-finite -> null, as ToJsonString
  void Bool(bool b);
  void Null();
  void Value(const json::value& v);  // any value, as ToJsonString writes it

  // Members whose value may be absent (null) or is a list of strings.
  template <typename T>
  void Member(std::string_view key, const T& value) {
    Key(key);
    Write(value);
  }

 private:
  void Open(char c);
  void Close(char c);
  void Separate();  // a comma unless this is the first item or follows a key

  void Write(std::string_view s) { String(s); }
  void Write(const std::string& s) { String(s); }
  void Write(const char* s) { String(s); }
  void Write(bool b) { Bool(b); }
  void Write(int v) { Int(v); }
  void Write(int64_t v) { Int(v); }
  void Write(double d) { Double(d); }
  void Write(const std::vector<std::string>& list);
  template <typename T>
  void Write(const std::optional<T>& v) {
    if (v) {
      Write(*v);
    } else {
      Null();
    }
  }

  std::string& out_;
  bool need_comma_ = false;
};
// The same, indented by two spaces per level with one member per line (for
// files people read and edit, such as .claude/settings.json).
std::string ToPrettyJson(const json::value& v);

}  // namespace ds
