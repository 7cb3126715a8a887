// Config holds typed settings drawn from four sources, each overriding the
// one before: built-in defaults < a YAML file < environment variables <
// command-line flags. The keys, their types, defaults, ranges and the
// environment variable of each come from a schema (ConfigKeySpec list), so
// every key is validated the same way and every error names the key, the
// value, where it came from and what is allowed. A key the schema does not
// know is an error in a file or a flag; in the environment only the
// variables the schema names are read.
// Thread-safety: a loaded Config is immutable and may be read concurrently.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace ds {

enum class ConfigType { kString, kInt, kDouble, kBool, kList, kEnum };

struct ConfigKeySpec {
  std::string key;  // dotted: "server.port"
  ConfigType type = ConfigType::kString;
  std::string default_value;  // as text; lists comma-separated
  std::string description;
  std::vector<std::string> env;  // variables read, first set wins
  double min = std::numeric_limits<double>::lowest();
  double max = std::numeric_limits<double>::max();
  std::vector<std::string> allowed;  // kEnum
  bool secret = false;               // redacted by Show()
};

enum class ConfigSource { kDefault, kFile, kEnvironment, kFlag };
const char* ConfigSourceName(ConfigSource s);

struct ConfigSources {
  std::optional<std::string> file;           // YAML path; nullopt: none
  std::map<std::string, std::string> env;    // the process environment
  std::map<std::string, std::string> flags;  // key -> value
};

class Config {
 public:
  static Result<Config> Load(const std::vector<ConfigKeySpec>& schema,
                             const ConfigSources& sources);

  std::string String(const std::string& key) const;
  int64_t Int(const std::string& key) const;
  double Double(const std::string& key) const;
  bool Bool(const std::string& key) const;
  std::vector<std::string> List(const std::string& key) const;
  ConfigSource Source(const std::string& key) const;
  // Where the value came from: the file path, the variable name, the flag.
  std::string Origin(const std::string& key) const;
  bool Has(const std::string& key) const { return values_.count(key) > 0; }

  // Every key: {"value", "source", "origin"}; a set secret as "[REDACTED]"
  // (an unset one shows its empty value).
  json::object Show() const;
  // DEVSTREAM_* variables that no key reads (except `client_vars`), for warnings.
  std::vector<std::string> UnknownEnvironment(const std::vector<std::string>& client_vars) const;

 private:
  struct Value {
    json::value value;  // string, int64, double, bool or array of strings
    ConfigSource source = ConfigSource::kDefault;
    std::string origin;
  };
  const Value& At(const std::string& key) const;

  std::vector<ConfigKeySpec> schema_;
  std::map<std::string, Value> values_;
  std::map<std::string, std::string> env_;
};

// Parses a value given as text for `spec` (used for every source).
Result<json::value> ParseConfigValue(const ConfigKeySpec& spec, const std::string& text,
                                     const std::string& where);

// The process environment as a map.
std::map<std::string, std::string> ProcessEnvironment();

}  // namespace ds
