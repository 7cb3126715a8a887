// Fuzz target: configuration files. The input is written to a temporary
// YAML file and loaded as `devstream --config <file>` would (LoadSettings
// with an empty environment, so nothing leaks in from the process); its
// first line is also parsed as a value of every key (ParseConfigValue).
// Invariants: a loaded Settings has every int and double inside its key's
// range (and finite), every enum among its allowed values, secrets redacted
// by Show(); the production checks run on it; an accepted value has the
// key's type and range.
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "app/settings.h"
#include "core/config.h"
#include "core/id.h"
#include "fuzz_world.h"

namespace {

namespace fs = std::filesystem;

// Never destroyed: the atexit handler that removes the file runs after
// static destructors would have.
const std::string& ConfigPath() {
  static const std::string* path = [] {
    std::string p = (fs::temp_directory_path() / ("ds_fuzz_config_" + std::to_string(::getpid()) +
                                                  "_" + ds::RandomHex(4) + ".yml"))
                        .string();
    std::atexit([] {
      std::error_code ec;
      fs::remove(ConfigPath(), ec);
    });
    return new std::string(p);
  }();
  return *path;
}

bool InRange(const ds::ConfigKeySpec& spec, double v) {
  return std::isfinite(v) && v >= spec.min && v <= spec.max;
}

void CheckValue(const ds::ConfigKeySpec& spec, const ds::json::value& v, const std::string& text) {
  using T = ds::ConfigType;
  bool ok = true;
  switch (spec.type) {
    case T::kInt:
      ok = v.is_int64() && InRange(spec, static_cast<double>(v.as_int64()));
      break;
    case T::kDouble:
      ok = (v.is_double() && InRange(spec, v.as_double())) ||
           (v.is_int64() && InRange(spec, static_cast<double>(v.as_int64())));
      break;
    case T::kBool:
      ok = v.is_bool();
      break;
    case T::kList:
      ok = v.is_array();
      break;
    case T::kEnum: {
      ok = v.is_string();
      if (ok) {
        std::string s(v.as_string());
        ok = false;
        for (const auto& a : spec.allowed) ok = ok || a == s;
      }
      break;
    }
    case T::kString:
      ok = v.is_string();
      break;
  }
  if (!ok) ds::fuzz::Fail("key " + spec.key + " accepted \"" + text + "\"");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input = ds::fuzz::AsString(data, size);
  std::string first_line = ds::fuzz::SplitFirstLine(input).first;
  const auto& schema = ds::app::SettingsSchema();
  for (const auto& spec : schema) {
    auto v = ds::ParseConfigValue(spec, first_line, "fuzz");
    if (v.ok() && !v->is_null()) {
      CheckValue(spec, *v, first_line);
    }
  }

  {
    std::ofstream out(ConfigPath(), std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  ds::app::SettingsOptions o;
  o.config_file = ConfigPath();
  o.env = std::map<std::string, std::string>{};
  auto settings = ds::app::LoadSettings(o);
  if (!settings.ok()) return 0;
  const ds::Config& c = settings->config;
  for (const auto& spec : schema) {
    if (!c.Has(spec.key)) continue;
    if (c.Source(spec.key) == ds::ConfigSource::kDefault && spec.default_value.empty()) continue;
    using T = ds::ConfigType;
    if (spec.type == T::kInt && !InRange(spec, static_cast<double>(c.Int(spec.key)))) {
      ds::fuzz::Fail("loaded " + spec.key + " out of range");
    }
    if (spec.type == T::kDouble && !InRange(spec, c.Double(spec.key))) {
      ds::fuzz::Fail("loaded " + spec.key + " out of range");
    }
    if (spec.type == T::kEnum) CheckValue(spec, ds::json::value(c.String(spec.key)), spec.key);
  }
  ds::json::object shown = c.Show();
  for (const auto& spec : schema) {
    if (!spec.secret || !c.Has(spec.key) || c.String(spec.key).empty()) continue;
    const auto* entry = shown.if_contains(spec.key);
    const auto* value =
        entry && entry->is_object() ? entry->as_object().if_contains("value") : nullptr;
    if (!value || !value->is_string() || value->as_string() != "[REDACTED]") {
      ds::fuzz::Fail("secret " + spec.key + " not redacted by Show()");
    }
  }
  (void)ds::app::ProductionRefusals(*settings, 0);
  (void)ds::app::ListensBeyondLoopback(*settings);
  return 0;
}
