// Byte encodings used in public tokens (pagination cursors). Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ds {

std::string Base64UrlEncode(std::string_view bytes);  // unpadded, RFC 4648 §5
std::optional<std::string> Base64UrlDecode(std::string_view text);

// True when `text` is well-formed UTF-8 (no overlongs, surrogates or values
// above U+10FFFF).
bool IsValidUtf8(std::string_view text);
// `text` with each byte that does not start a well-formed UTF-8 sequence
// replaced by U+FFFD (for echoing untrusted bytes in JSON).
std::string ToValidUtf8(std::string_view text);
// Number of code points in well-formed UTF-8.
size_t Utf8Length(std::string_view text);
// The longest prefix of `text` of at most `max_bytes` bytes that does not
// end inside a UTF-8 sequence.
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);
// The first line of `text`, cut to `max_bytes` on a character boundary with
// "…" appended when cut.
std::string FirstLine(std::string_view text, size_t max_bytes);

}  // namespace ds
