// Byte encodings used in public tokens (pagination cursors). Pure; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ds {

std::string Base64UrlEncode(std::string_view bytes);  // unpadded, RFC 4648 §5
std::optional<std::string> Base64UrlDecode(std::string_view text);

}  // namespace ds
