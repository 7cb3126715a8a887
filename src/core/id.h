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
// Hex of `n` random bytes (request ids, tokens).
std::string RandomHex(size_t n);
// Hex of the 32-byte BLAKE2b hash of `data` (migration checksums, API-key hashes).
std::string Blake2bHex(std::string_view data);

}  // namespace ds
