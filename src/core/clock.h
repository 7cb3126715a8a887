// Wall-clock helpers. Timestamps are stored and exchanged as RFC 3339 UTC strings
// with millisecond precision ("2026-11-26T03:31:29.123Z"), which sort
// lexicographically in time order. Thread-safe: all functions are pure or read
// the system clock.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ds {

int64_t NowMillis();
std::string FormatTimestamp(int64_t unix_millis);
std::string NowTimestamp();
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]"; nullopt when malformed.
std::optional<int64_t> ParseTimestamp(std::string_view text);

}  // namespace ds
