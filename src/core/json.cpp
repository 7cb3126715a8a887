#include "core/json.h"

#include "core/encoding.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace ds {

Result<json::value> ParseJson(std::string_view text, size_t max_depth) {
  json::parse_options opts;
  opts.max_depth = max_depth;
  json::error_code ec;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) {
    if (ec == json::error::too_deep) {
      return Status::Malformed("JSON nests deeper than " + std::to_string(max_depth) + " levels");
    }
    return Status::Malformed("body is not valid JSON: " + ec.message());
  }
  return v;
}

std::string_view JsonKind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "integer";
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "unknown";
}

Result<const json::object*> RequireObject(const json::value& v, std::string_view what) {
  if (!v.is_object()) {
    return Status::InvalidArgument(std::string(what) + " must be a JSON object, got " +
                                   std::string(JsonKind(v)));
  }
  return &v.get_object();
}

json::array ToJsonArray(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

std::string EncodeStringList(const std::vector<std::string>& v) {
  return json::serialize(ToJsonArray(v));
}

namespace {
// The form EncodeStringList writes, when no string needs an escape:
// ["a","b"] with no whitespace. Anything else (escapes, spaces, other
// values, bad UTF-8) returns false and goes through the full parser, so both
// paths agree on every input.
bool DecodePlainStringList(std::string_view text, std::vector<std::string>& out) {
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return false;
  out.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), ',')) + 1);
  size_t i = 1;
  const size_t end = text.size() - 1;
  if (i == end) return true;
  for (;;) {
    if (text[i] != '"') return false;
    const size_t start = ++i;
    while (i < end && text[i] != '"') {
      const auto c = static_cast<unsigned char>(text[i]);
      if (c < 0x20 || c == '\\') return false;
      ++i;
    }
    if (i >= end) return false;
    std::string_view item = text.substr(start, i - start);
    if (!IsValidUtf8(item)) return false;
    out.emplace_back(item);
    ++i;
    if (i == end) return true;
    if (text[i] != ',') return false;
    ++i;
  }
}
}  // namespace

std::vector<std::string> DecodeStringList(const std::string& text) {
  std::vector<std::string> out;
  if (DecodePlainStringList(text, out)) return out;
  out.clear();
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& item : v.get_array()) {
    if (item.is_string()) out.emplace_back(item.get_string());
  }
  return out;
}

json::value JsonNumber(double d) {
  if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) {
    return static_cast<int64_t>(d);
  }
  return d;
}

namespace {
constexpr char kHex[] = "0123456789abcdef";

template <typename Integer>
void AppendInteger(std::string& out, Integer v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

// Like json::serialize, but doubles use the shortest round-trip decimal form
// ("1.039", "0.5") instead of Boost.JSON's exponent form ("1.039E0"), and
// nothing is allocated along the way.
void Serialize(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
      AppendInteger(out, v.get_int64());
      return;
    case json::kind::uint64:
      AppendInteger(out, v.get_uint64());
      return;
    case json::kind::double_: {
      double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buf[64];
      auto res = std::to_chars(buf, buf + sizeof buf, d);
      out.append(buf, res.ptr);
      return;
    }
    case json::kind::string:
      AppendJsonString(out, v.get_string());
      return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        Serialize(item, out);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, kv.key());
        out += ':';
        Serialize(kv.value(), out);
      }
      out += '}';
      return;
    }
  }
}
}  // namespace

namespace {
// True when any of the eight bytes of `w` needs an escape: a control byte, '"'
// or '\\'. (The classic has-zero-byte / has-byte-less-than tests; exact as a
// yes/no answer, which is all the caller uses.)
bool AnyByteNeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t backslash = w ^ (kOnes * '\\');
  return (below_space | ((quote - kOnes) & ~quote & kHigh) |
          ((backslash - kOnes) & ~backslash & kHigh)) != 0;
}
}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out += '"';
  size_t run = 0;  // start of the bytes not yet copied
  size_t i = 0;
  while (i < s.size()) {
    // Most text needs no escape: skip it eight bytes at a time.
    for (uint64_t w; i + 8 <= s.size(); i += 8) {
      std::memcpy(&w, s.data() + i, 8);
      if (AnyByteNeedsEscape(w)) break;
    }
    if (i >= s.size()) break;
    const auto c = static_cast<unsigned char>(s[i++]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - 1 - run);
    run = i;
    out += '\\';
    switch (c) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '\b':
        out += 'b';
        break;
      case '\f':
        out += 'f';
        break;
      case '\n':
        out += 'n';
        break;
      case '\r':
        out += 'r';
        break;
      case '\t':
        out += 't';
        break;
      default:
        out += "u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void JsonWriter::Separate() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}

void JsonWriter::Open(char c) {
  Separate();
  out_ += c;
  need_comma_ = false;
}

void JsonWriter::Close(char c) {
  out_ += c;
  need_comma_ = true;
}

void JsonWriter::Key(std::string_view key) {
  Separate();
  AppendJsonString(out_, key);
  out_ += ':';
  need_comma_ = false;
}

void JsonWriter::String(std::string_view s) {
  Separate();
  AppendJsonString(out_, s);
}

void JsonWriter::Int(int64_t v) {
  Separate();
  AppendInteger(out_, v);
}

void JsonWriter::Double(double d) {
  Separate();
  Serialize(json::value(d), out_);
}

void JsonWriter::Bool(bool b) {
  Separate();
  out_ += b ? "true" : "false";
}

void JsonWriter::Null() {
  Separate();
  out_ += "null";
}

void JsonWriter::Value(const json::value& v) {
  Separate();
  Serialize(v, out_);
}

void JsonWriter::Write(const std::vector<std::string>& list) {
  BeginArray();
  for (const auto& s : list) String(s);
  EndArray();
}

std::string ToJsonString(const json::value& v) {
  std::string out;
  Serialize(v, out);
  return out;
}

namespace {

void Pretty(const json::value& v, int depth, std::string& out) {
  std::string indent(static_cast<size_t>(depth + 1) * 2, ' ');
  std::string closing(static_cast<size_t>(depth) * 2, ' ');
  if (v.is_object() && !v.as_object().empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& [k, val] : v.as_object()) {
      if (!first) out += ",\n";
      first = false;
      out += indent;
      Serialize(json::value(json::string(k)), out);
      out += ": ";
      Pretty(val, depth + 1, out);
    }
    out += "\n" + closing + "}";
  } else if (v.is_array() && !v.as_array().empty()) {
    out += "[\n";
    bool first = true;
    for (const auto& item : v.as_array()) {
      if (!first) out += ",\n";
      first = false;
      out += indent;
      Pretty(item, depth + 1, out);
    }
    out += "\n" + closing + "]";
  } else {
    Serialize(v, out);
  }
}

}  // namespace

std::string ToPrettyJson(const json::value& v) {
  std::string out;
  Pretty(v, 0, out);
  out += "\n";
  return out;
}

ObjectReader::ObjectReader(const json::object& obj, std::string where)
    : obj_(obj), where_(std::move(where)) {}

bool ObjectReader::Has(std::string_view key) const {
  auto it = obj_.find(key);
  return it != obj_.end() && !it->value().is_null();
}

bool ObjectReader::IsNull(std::string_view key) const {
  auto it = obj_.find(key);
  return it != obj_.end() && it->value().is_null();
}

void ObjectReader::Fail(std::string_view key, std::string message) {
  if (first_error_.ok()) {
    first_error_ = Status::InvalidArgument(where_ + "." + std::string(key) + ": " + message)
                       .WithDetail("field", json::string(key));
  }
}

const json::value* ObjectReader::Lookup(std::string_view key, bool required) {
  known_.insert(std::string(key));
  auto it = obj_.find(key);
  if (it == obj_.end() || it->value().is_null()) {
    if (required) Fail(key, "is required");
    return nullptr;
  }
  return &it->value();
}

std::optional<std::string> ObjectReader::String(std::string_view key, bool required, size_t min_len,
                                                size_t max_len) {
  const json::value* v = Lookup(key, required);
  if (!v) return std::nullopt;
  if (!v->is_string()) {
    Fail(key, "must be a string, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  std::string s(v->get_string());
  if (!IsValidUtf8(s)) {
    Fail(key, "must be valid UTF-8");
    return std::nullopt;
  }
  size_t cps = Utf8Length(s);
  if (cps < min_len || cps > max_len) {
    Fail(key, "length must be " + std::to_string(min_len) + ".." + std::to_string(max_len) +
                  " characters, got " + std::to_string(cps));
    return std::nullopt;
  }
  if (s.find('\0') != std::string::npos) {
    Fail(key, "must not contain NUL characters");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> ObjectReader::Enum(std::string_view key, bool required,
                                              const std::vector<std::string_view>& allowed) {
  auto s = String(key, required);
  if (!s) return std::nullopt;
  for (auto a : allowed) {
    if (*s == a) return s;
  }
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  Fail(key, "must be one of: " + list + "; got \"" + *s + "\"");
  return std::nullopt;
}

std::optional<int64_t> ObjectReader::Int(std::string_view key, bool required, int64_t min,
                                         int64_t max) {
  const json::value* v = Lookup(key, required);
  if (!v) return std::nullopt;
  int64_t out;
  if (v->is_int64()) {
    out = v->get_int64();
  } else if (v->is_uint64()) {
    Fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  } else if (v->is_double() && std::isfinite(v->get_double()) &&
             std::floor(v->get_double()) == v->get_double() && std::fabs(v->get_double()) < 9e15) {
    out = static_cast<int64_t>(v->get_double());
  } else {
    Fail(key, "must be an integer, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  if (out < min || out > max) {
    Fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                  std::to_string(out));
    return std::nullopt;
  }
  return out;
}

std::optional<double> ObjectReader::Number(std::string_view key, bool required, double min,
                                           double max) {
  const json::value* v = Lookup(key, required);
  if (!v) return std::nullopt;
  if (!v->is_number()) {
    Fail(key, "must be a number, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  double d = v->to_number<double>();
  if (!std::isfinite(d) || d < min || d > max) {
    Fail(key, "must be between " + json::serialize(json::value(min)) + " and " +
                  json::serialize(json::value(max)));
    return std::nullopt;
  }
  return d;
}

std::optional<bool> ObjectReader::Bool(std::string_view key, bool required) {
  const json::value* v = Lookup(key, required);
  if (!v) return std::nullopt;
  if (!v->is_bool()) {
    Fail(key, "must be a boolean, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  return v->get_bool();
}

std::optional<std::vector<std::string>> ObjectReader::StringArray(std::string_view key,
                                                                  bool required, size_t max_items,
                                                                  size_t max_len) {
  const json::value* v = Lookup(key, required);
  if (!v) return std::nullopt;
  if (!v->is_array()) {
    Fail(key, "must be an array of strings, got " + std::string(JsonKind(*v)));
    return std::nullopt;
  }
  const auto& arr = v->get_array();
  if (arr.size() > max_items) {
    Fail(key, "must have at most " + std::to_string(max_items) + " items");
    return std::nullopt;
  }
  std::vector<std::string> out;
  out.reserve(arr.size());
  for (const auto& item : arr) {
    if (!item.is_string()) {
      Fail(key, "items must be strings, got " + std::string(JsonKind(item)));
      return std::nullopt;
    }
    std::string_view text(item.get_string());
    if (!IsValidUtf8(text)) {
      Fail(key, "items must be valid UTF-8");
      return std::nullopt;
    }
    if (Utf8Length(text) > max_len || text.empty()) {
      Fail(key, "items must be 1.." + std::to_string(max_len) + " characters");
      return std::nullopt;
    }
    if (std::string_view(item.get_string()).find('\0') != std::string_view::npos) {
      Fail(key, "items must not contain NUL characters");
      return std::nullopt;
    }
    out.emplace_back(item.get_string());
  }
  return out;
}

const json::value* ObjectReader::Raw(std::string_view key) {
  return Lookup(key, false);
}

Status ObjectReader::Finish() const {
  if (!first_error_.ok()) return first_error_;
  for (const auto& kv : obj_) {
    if (!known_.count(std::string_view(kv.key()))) {
      return Status::InvalidArgument(where_ + ": unknown field \"" + std::string(kv.key()) + "\"")
          .WithDetail("field", json::string(kv.key()));
    }
  }
  return Status::Ok();
}

}  // namespace ds
