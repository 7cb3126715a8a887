// Resource ids: "<prefix>_<26 chars>" where the 26 Crockford-base32 characters
// encode 48 bits of creation time (ms) and 80 random bits (libsodium). Ids sort
// lexicographically by creation time; within one process ids created in the
// same millisecond still sort in creation order (the random part is
// incremented). Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace ds {

std::string NewId(std::string_view prefix);
// True when `id` has the shape NewId(prefix) produces.
bool IsValidId(std::string_view id, std::string_view prefix);
// Hex of `n` random bytes (tokens, session ids).
std::string RandomHex(size_t n);
// 32 hex digits for correlation ids (X-Request-Id): CSPRNG bytes like
// RandomHex, but taken from a per-thread buffer refilled 4 KiB at a time,
// one getrandom call per 256 ids instead of one per request. Not for secrets:
// a forked child would repeat its parent's buffered bytes.
std::string CorrelationId();
// Hex of the 32-byte BLAKE2b hash of `data` (migration checksums, API-key hashes).
std::string Blake2bHex(std::string_view data);

}  // namespace ds
