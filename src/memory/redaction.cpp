#include "memory/redaction.h"

#include <cctype>
#include <vector>

namespace ds::memory {
namespace {

constexpr std::string_view kMark = "[REDACTED]";

bool IsTokenChar(unsigned char c) {
  return std::isalnum(c) || c == '_' || c == '-';
}
bool IsB64UrlChar(unsigned char c) {
  return std::isalnum(c) || c == '_' || c == '-';
}

bool StartsWith(std::string_view s, size_t pos, std::string_view prefix) {
  return s.size() >= pos + prefix.size() && s.compare(pos, prefix.size(), prefix) == 0;
}

bool StartsWithNoCase(std::string_view s, size_t pos, std::string_view prefix) {
  if (s.size() < pos + prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[pos + i])) != prefix[i]) return false;
  }
  return true;
}

size_t SpanWhile(std::string_view s, size_t pos, bool (*pred)(unsigned char)) {
  size_t end = pos;
  while (end < s.size() && pred(static_cast<unsigned char>(s[end]))) ++end;
  return end;
}

bool WordBoundaryBefore(std::string_view s, size_t pos) {
  return pos == 0 || !IsTokenChar(static_cast<unsigned char>(s[pos - 1]));
}

// A prefixed token: prefix then at least `min_body` token characters.
size_t MatchPrefixed(std::string_view s, size_t pos, std::string_view prefix, size_t min_body,
                     bool (*body)(unsigned char) = IsTokenChar) {
  if (!StartsWith(s, pos, prefix) || !WordBoundaryBefore(s, pos)) return 0;
  size_t end = SpanWhile(s, pos + prefix.size(), body);
  return end - pos - prefix.size() >= min_body ? end - pos : 0;
}

size_t MatchPem(std::string_view s, size_t pos) {
  if (!StartsWith(s, pos, "-----BEGIN ")) return 0;
  size_t header_end = s.find("-----", pos + 11);
  if (header_end == std::string_view::npos || header_end - pos > 80) return 0;
  std::string_view header = s.substr(pos, header_end - pos);
  if (header.find("PRIVATE KEY") == std::string_view::npos) return 0;
  size_t end = s.find("-----END ", header_end + 5);
  if (end == std::string_view::npos) return s.size() - pos;  // unterminated: drop the rest
  size_t close = s.find("-----", end + 9);
  return close == std::string_view::npos ? s.size() - pos : close + 5 - pos;
}

size_t MatchAwsKeyId(std::string_view s, size_t pos) {
  for (std::string_view p : {"AKIA", "ASIA", "AGPA", "AIDA", "AROA"}) {
    if (StartsWith(s, pos, p) && WordBoundaryBefore(s, pos)) {
      size_t end = pos + 4;
      while (end < s.size() && end - pos < 20 &&
             (std::isupper(static_cast<unsigned char>(s[end])) ||
              std::isdigit(static_cast<unsigned char>(s[end])))) {
        ++end;
      }
      if (end - pos == 20 &&
          (end == s.size() || !IsTokenChar(static_cast<unsigned char>(s[end])))) {
        return 20;
      }
    }
  }
  return 0;
}

size_t MatchJwt(std::string_view s, size_t pos) {
  if (!StartsWith(s, pos, "eyJ") || !WordBoundaryBefore(s, pos)) return 0;
  size_t end = pos;
  for (int part = 0; part < 3; ++part) {
    size_t start = end;
    end = SpanWhile(s, end, IsB64UrlChar);
    if (end - start < 4) return 0;
    if (part < 2) {
      if (end >= s.size() || s[end] != '.') return 0;
      ++end;
    }
  }
  return end - pos;
}

// "Bearer <credential>": the credential is redacted, "Bearer " kept.
size_t MatchBearer(std::string_view s, size_t pos, size_t* keep) {
  if (!StartsWithNoCase(s, pos, "bearer ") || !WordBoundaryBefore(s, pos)) return 0;
  size_t start = pos + 7;
  while (start < s.size() && s[start] == ' ') ++start;
  size_t end = start;
  while (end < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[end]);
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
          c == '=')) {
      break;
    }
    ++end;
  }
  // A credential looks random: long, with a digit or token punctuation.
  // "Bearer authentication" is prose, not a token.
  if (end - start < 16) return 0;
  bool tokenish = false;
  for (size_t j = start; j < end; ++j) {
    char ch = s[j];
    tokenish |= std::isdigit(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                ch == '-' || ch == '~' || ch == '+' || ch == '/' || ch == '=';
  }
  if (!tokenish) return 0;
  *keep = start - pos;
  return end - pos;
}

// key = value / key: value / "key": "value" where key names a secret.
size_t MatchAssignment(std::string_view s, size_t pos, size_t* keep) {
  static const std::vector<std::string_view> kKeys{
      "password", "passwd",     "pwd",         "secret",        "token",      "api_key",   "apikey",
      "api-key",  "access_key", "private_key", "client_secret", "auth_token", "secret_key"};
  if (!WordBoundaryBefore(s, pos)) return 0;
  // The key may carry a prefix/suffix (DB_PASSWORD, aws_secret_access_key).
  size_t key_end = SpanWhile(s, pos, IsTokenChar);
  if (key_end == pos || key_end - pos > 64) return 0;
  std::string key(s.substr(pos, key_end - pos));
  for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // The key must end with a secret word (DB_PASSWORD, aws_secret_access_key,
  // authToken) — not merely contain one (max_tokens, token_count, passwordField).
  bool secret_key = false;
  for (auto k : kKeys) {
    secret_key |= key.size() >= k.size() && key.compare(key.size() - k.size(), k.size(), k) == 0;
  }
  if (!secret_key) return 0;
  size_t i = key_end;
  if (i < s.size() && (s[i] == '"' || s[i] == '\'')) ++i;
  while (i < s.size() && s[i] == ' ') ++i;
  if (i >= s.size() || (s[i] != '=' && s[i] != ':')) return 0;
  ++i;
  while (i < s.size() && s[i] == ' ') ++i;
  char quote = 0;
  if (i < s.size() && (s[i] == '"' || s[i] == '\'')) quote = s[i++];
  size_t start = i;
  // Secrets are short; bounding the scan keeps the whole pass linear even on
  // input like "password=$x" repeated without delimiters.
  constexpr size_t kMaxValue = 512;
  while (i < s.size() && i - start <= kMaxValue) {
    char c = s[i];
    if (quote ? c == quote
              : (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == ',' || c == ';' ||
                 c == '&' || c == '"' || c == '\'')) {
      break;
    }
    if (c == '\n') break;
    ++i;
  }
  size_t len = i - start;
  // Skip empty values, runaway values and obvious placeholders / code references.
  if (len < 4 || len > kMaxValue) return 0;
  std::string_view value = s.substr(start, len);
  if (value.front() == '$' || value.front() == '<' || value.front() == '{' || value == "null" ||
      value == "None" || value == "true" || value == "false" ||
      value.find("getenv") != std::string_view::npos ||
      value.find("environ") != std::string_view::npos || value == "[REDACTED]" ||
      (!quote && value.find('(') != std::string_view::npos)) {  // a call, not a literal
    return 0;
  }
  *keep = start - pos;
  return i - pos;
}

}  // namespace

Redaction RedactSecrets(std::string_view s) {
  Redaction out;
  out.text.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    size_t keep = 0;
    size_t len = 0;
    unsigned char c = static_cast<unsigned char>(s[pos]);
    // Dispatch on the first byte so the common case costs one switch.
    switch (c) {
      case '-':
        len = MatchPem(s, pos);
        break;
      case 'A':
        len = MatchAwsKeyId(s, pos);
        if (!len) len = MatchPrefixed(s, pos, "AIza", 30);
        break;
      case 's':
        len = MatchPrefixed(s, pos, "sk-", 20);
        break;
      case 'g':
        for (std::string_view p : {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}) {
          if ((len = MatchPrefixed(s, pos, p, 30))) break;
        }
        if (!len) len = MatchPrefixed(s, pos, "github_pat_", 30);
        break;
      case 'x':
        for (std::string_view p : {"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"}) {
          if ((len = MatchPrefixed(s, pos, p, 10))) break;
        }
        break;
      case 'e':
        len = MatchJwt(s, pos);
        break;
      case 'B':
      case 'b':
        len = MatchBearer(s, pos, &keep);
        break;
      default:
        break;
    }
    if (!len && std::isalpha(c)) len = MatchAssignment(s, pos, &keep);
    if (len) {
      out.text.append(s.substr(pos, keep));
      out.text.append(kMark);
      pos += len;
      ++out.count;
      continue;
    }
    // Copy the rest of this word (or one byte) unchanged.
    size_t next = pos + 1;
    if (IsTokenChar(c)) next = SpanWhile(s, pos, IsTokenChar);
    out.text.append(s.substr(pos, next - pos));
    pos = next;
  }
  return out;
}

}  // namespace ds::memory
