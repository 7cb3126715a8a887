#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

extern char** environ;

namespace ds {
namespace {

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Allowed(const ConfigKeySpec& spec) {
  auto num = [](double v) {
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
    std::ostringstream o;
    o << v;
    return o.str();
  };
  switch (spec.type) {
    case ConfigType::kInt:
    case ConfigType::kDouble: {
      std::string what = spec.type == ConfigType::kInt ? "an integer" : "a number";
      bool lo = spec.min != std::numeric_limits<double>::lowest();
      bool hi = spec.max != std::numeric_limits<double>::max();
      if (lo && hi) return what + " in " + num(spec.min) + ".." + num(spec.max);
      if (lo) return what + " ≥ " + num(spec.min);
      if (hi) return what + " ≤ " + num(spec.max);
      return what;
    }
    case ConfigType::kBool:
      return "true or false";
    case ConfigType::kList:
      return "a list (YAML sequence, or comma-separated text)";
    case ConfigType::kEnum: {
      std::string list;
      for (const auto& a : spec.allowed) list += (list.empty() ? "" : ", ") + a;
      return "one of " + list;
    }
    case ConfigType::kString:
      return "text";
  }
  return "";
}

Status Bad(const ConfigKeySpec& spec, const std::string& text, const std::string& where) {
  std::string shown = spec.secret ? "[REDACTED]" : "\"" + text + "\"";
  return Status::InvalidArgument(spec.key + " = " + shown + " (from " + where + ") is not " +
                                 Allowed(spec))
      .WithDetail("field", json::string(spec.key));
}

// Flattens a YAML mapping into dotted keys; scalars keep their text,
// sequences become a list of scalars.
Status Flatten(const YAML::Node& node, const std::string& prefix, const std::string& file,
               std::map<std::string, json::value>* out) {
  if (!node.IsMap()) {
    return Status::InvalidArgument(file + ": " + (prefix.empty() ? "the document" : prefix) +
                                   " must be a mapping of keys");
  }
  for (const auto& kv : node) {
    std::string key = kv.first.as<std::string>();
    std::string full = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& v = kv.second;
    if (v.IsMap()) {
      DS_RETURN_IF_ERROR(Flatten(v, full, file, out));
    } else if (v.IsSequence()) {
      json::array items;
      for (const auto& item : v) {
        if (!item.IsScalar()) {
          return Status::InvalidArgument(file + ": " + full + " must be a list of plain values");
        }
        items.emplace_back(item.as<std::string>());
      }
      (*out)[full] = std::move(items);
    } else if (v.IsNull()) {
      (*out)[full] = nullptr;
    } else {
      (*out)[full] = json::string(v.as<std::string>());
    }
  }
  return Status::Ok();
}

std::string Suggest(const std::vector<ConfigKeySpec>& schema, const std::string& key) {
  // The known key sharing the longest prefix with the unknown one.
  size_t best = 0;
  std::string found;
  for (const auto& s : schema) {
    size_t n = 0;
    while (n < s.key.size() && n < key.size() && s.key[n] == key[n]) ++n;
    if (n > best) {
      best = n;
      found = s.key;
    }
  }
  return best >= 3 ? " (did you mean " + found + "?)" : "";
}

}  // namespace

const char* ConfigSourceName(ConfigSource s) {
  switch (s) {
    case ConfigSource::kDefault:
      return "default";
    case ConfigSource::kFile:
      return "file";
    case ConfigSource::kEnvironment:
      return "environment";
    case ConfigSource::kFlag:
      return "flag";
  }
  return "?";
}

Result<json::value> ParseConfigValue(const ConfigKeySpec& spec, const std::string& raw,
                                     const std::string& where) {
  std::string text = Trim(raw);
  switch (spec.type) {
    case ConfigType::kString:
      return json::value(json::string(raw));
    case ConfigType::kInt: {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (text.empty() || ec != std::errc() || p != text.data() + text.size() ||
          static_cast<double>(v) < spec.min || static_cast<double>(v) > spec.max) {
        return Bad(spec, raw, where);
      }
      return json::value(v);
    }
    case ConfigType::kDouble: {
      char* end = nullptr;
      double v = text.empty() ? NAN : std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || !std::isfinite(v) || v < spec.min || v > spec.max) {
        return Bad(spec, raw, where);
      }
      return json::value(v);
    }
    case ConfigType::kBool: {
      std::string l = Lower(text);
      if (l == "true" || l == "yes" || l == "on" || l == "1") return json::value(true);
      if (l == "false" || l == "no" || l == "off" || l == "0") return json::value(false);
      return Bad(spec, raw, where);
    }
    case ConfigType::kList: {
      json::array items;
      size_t pos = 0;
      while (pos <= text.size() && !text.empty()) {
        size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = Trim(text.substr(pos, end - pos));
        if (!item.empty()) items.emplace_back(item);
        pos = end + 1;
      }
      return json::value(std::move(items));
    }
    case ConfigType::kEnum: {
      if (std::find(spec.allowed.begin(), spec.allowed.end(), text) == spec.allowed.end()) {
        return Bad(spec, raw, where);
      }
      return json::value(json::string(text));
    }
  }
  return Bad(spec, raw, where);
}

Result<Config> Config::Load(const std::vector<ConfigKeySpec>& schema,
                            const ConfigSources& sources) {
  Config c;
  c.schema_ = schema;
  c.env_ = sources.env;
  std::map<std::string, const ConfigKeySpec*> by_key;
  for (const auto& s : schema) by_key[s.key] = &s;
  for (const auto& s : schema) {
    Value v;
    if (s.default_value.empty() && s.type != ConfigType::kList) {
      // No default: empty text, or null for typed keys, until a source sets it.
      v.value = s.type == ConfigType::kString ? json::value(json::string()) : json::value(nullptr);
    } else {
      DS_ASSIGN_OR_RETURN(v.value, ParseConfigValue(s, s.default_value, "the default"));
    }
    v.source = ConfigSource::kDefault;
    c.values_[s.key] = std::move(v);
  }
  if (sources.file) {
    std::ifstream in(*sources.file);
    if (!in) return Status::InvalidArgument("config file " + *sources.file + " cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    YAML::Node root;
    try {
      root = YAML::Load(text.str());
    } catch (const YAML::Exception& e) {
      return Status::InvalidArgument("config file " + *sources.file +
                                     " is not valid YAML: " + e.what());
    }
    std::map<std::string, json::value> flat;
    if (root && !root.IsNull()) {
      try {
        DS_RETURN_IF_ERROR(Flatten(root, "", *sources.file, &flat));
      } catch (const YAML::Exception& e) {
        return Status::InvalidArgument("config file " + *sources.file + ": " + e.what());
      }
    }
    for (const auto& [key, raw] : flat) {
      auto it = by_key.find(key);
      if (it == by_key.end()) {
        return Status::InvalidArgument("config file " + *sources.file + ": unknown key " + key +
                                       Suggest(schema, key))
            .WithDetail("field", json::string(key));
      }
      const ConfigKeySpec& spec = *it->second;
      if (raw.is_null()) continue;  // "key:" with no value keeps the default
      json::value parsed;
      if (raw.is_array()) {
        if (spec.type != ConfigType::kList) {
          return Bad(spec, "(a list)", *sources.file);
        }
        parsed = raw;
      } else {
        DS_ASSIGN_OR_RETURN(parsed,
                            ParseConfigValue(spec, std::string(raw.as_string()), *sources.file));
      }
      c.values_[key] = Value{std::move(parsed), ConfigSource::kFile, *sources.file};
    }
  }
  for (const auto& s : schema) {
    for (const auto& name : s.env) {
      auto it = sources.env.find(name);
      if (it == sources.env.end()) continue;
      DS_ASSIGN_OR_RETURN(auto parsed, ParseConfigValue(s, it->second, "environment " + name));
      c.values_[s.key] = Value{std::move(parsed), ConfigSource::kEnvironment, name};
      break;
    }
  }
  for (const auto& [key, text] : sources.flags) {
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      return Status::InvalidArgument("unknown config key " + key + Suggest(schema, key))
          .WithDetail("field", json::string(key));
    }
    DS_ASSIGN_OR_RETURN(auto parsed, ParseConfigValue(*it->second, text, "flag --" + key));
    c.values_[key] = Value{std::move(parsed), ConfigSource::kFlag, "--" + key};
  }
  return c;
}

const Config::Value& Config::At(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) {
    static const Value missing;
    return missing;
  }
  return it->second;
}

std::string Config::String(const std::string& key) const {
  const auto& v = At(key).value;
  return v.is_string() ? std::string(v.as_string()) : std::string();
}

int64_t Config::Int(const std::string& key) const {
  const auto& v = At(key).value;
  return v.is_int64() ? v.as_int64() : 0;
}

double Config::Double(const std::string& key) const {
  const auto& v = At(key).value;
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  return 0;
}

bool Config::Bool(const std::string& key) const {
  const auto& v = At(key).value;
  return v.is_bool() && v.as_bool();
}

std::vector<std::string> Config::List(const std::string& key) const {
  std::vector<std::string> out;
  const auto& v = At(key).value;
  if (v.is_array()) {
    for (const auto& item : v.as_array()) {
      if (item.is_string()) out.emplace_back(item.as_string());
    }
  }
  return out;
}

ConfigSource Config::Source(const std::string& key) const {
  return At(key).source;
}
std::string Config::Origin(const std::string& key) const {
  return At(key).origin;
}

json::object Config::Show() const {
  json::object out;
  for (const auto& s : schema_) {
    const Value& v = At(s.key);
    json::value shown = v.value;
    bool unset = v.value.is_null() || (v.value.is_string() && v.value.as_string().empty());
    if (s.secret && !unset) shown = "[REDACTED]";
    json::object entry{{"value", shown}, {"source", ConfigSourceName(v.source)}};
    if (!v.origin.empty()) entry["origin"] = v.origin;
    out[s.key] = std::move(entry);
  }
  return out;
}

std::vector<std::string> Config::UnknownEnvironment(
    const std::vector<std::string>& client_vars) const {
  std::vector<std::string> out;
  for (const auto& [name, value] : env_) {
    if (name.rfind("DEVSTREAM_", 0) != 0) continue;
    bool known = std::find(client_vars.begin(), client_vars.end(), name) != client_vars.end();
    for (const auto& s : schema_) {
      known |= std::find(s.env.begin(), s.env.end(), name) != s.env.end();
    }
    if (!known) out.push_back(name);
  }
  return out;
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace ds
