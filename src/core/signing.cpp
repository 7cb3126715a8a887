#include "core/signing.h"

#include <sodium.h>

#include <array>
#include <cstring>

#include "core/encoding.h"

namespace ds {
namespace {

constexpr size_t kMacBytes = 16;
using Key = std::array<unsigned char, crypto_generichash_KEYBYTES>;

Key DeriveKey(std::string_view secret) {
  Key key{};
  // Domain-separated, so the same secret used elsewhere yields another key.
  std::string input = "devstream signing key v1\n";
  input.append(secret);
  crypto_generichash(key.data(), key.size(), reinterpret_cast<const unsigned char*>(input.data()),
                     input.size(), nullptr, 0);
  return key;
}

Key& SigningKey() {
  static Key key = DeriveKey("");
  return key;
}

std::array<unsigned char, kMacBytes> Mac(std::string_view payload) {
  std::array<unsigned char, kMacBytes> mac{};
  const Key& key = SigningKey();
  crypto_generichash(mac.data(), mac.size(), reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size(), key.data(), key.size());
  return mac;
}

}  // namespace

void SetSigningKey(std::string_view secret) {
  SigningKey() = DeriveKey(secret);
}

std::string Sign(std::string_view payload) {
  auto mac = Mac(payload);
  std::string out(payload);
  out.push_back('.');
  out += Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac.data()), mac.size()));
  return out;
}

std::optional<std::string> Verify(std::string_view token) {
  size_t dot = token.rfind('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view payload = token.substr(0, dot);
  auto given = Base64UrlDecode(token.substr(dot + 1));
  if (!given || given->size() != kMacBytes) return std::nullopt;
  auto mac = Mac(payload);
  if (sodium_memcmp(mac.data(), given->data(), kMacBytes) != 0) return std::nullopt;
  return std::string(payload);
}

std::string EncodeCursor(std::string_view position) {
  return Sign(Base64UrlEncode(position));
}

std::optional<std::string> DecodeCursor(const std::optional<std::string>& cursor) {
  if (!cursor || cursor->empty()) return std::string();
  if (cursor->size() > 512) return std::nullopt;
  auto payload = Verify(*cursor);
  if (!payload) return std::nullopt;
  return Base64UrlDecode(*payload);
}

}  // namespace ds
