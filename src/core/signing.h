// Signed tokens: what the server hands out and later takes back from clients
// — pagination cursors, MCP session ids — carries a MAC (keyed BLAKE2b-128,
// libsodium) under the process's signing key, derived from
// security.secret_key. A client cannot forge or alter one, and rotating the
// secret invalidates those already issued (API keys are not signed, so
// rotation revokes none).
// Token shape: "<payload>.<mac>", the MAC as 22 base64url characters; the
// payload must not contain '.'.
// Without a secret (development) the key is a fixed constant: tokens are
// still checked for integrity, but anyone could mint one.
// Thread-safety: SetSigningKey once at start-up, before any Sign/Verify
// runs concurrently; Sign and Verify are then thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ds {

void SetSigningKey(std::string_view secret);
// `payload` with its MAC appended.
std::string Sign(std::string_view payload);
// The payload of a token this process (or one with the same secret) signed;
// nullopt when it is malformed or its MAC does not match.
std::optional<std::string> Verify(std::string_view token);

// Pagination cursors: base64url of `position`, signed.
std::string EncodeCursor(std::string_view position);
// The position, "" for an absent or empty cursor; nullopt for one this server
// did not issue (or issued under another secret).
std::optional<std::string> DecodeCursor(const std::optional<std::string>& cursor);

}  // namespace ds
