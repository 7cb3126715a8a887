// Secret redaction applied to every memory before it is stored: private key
// blocks and common credential formats are replaced with "[REDACTED]" so
// nothing secret reaches the database, the index or an assistant's context.
// Covered formats: PEM private keys; AWS access key ids (AKIA/ASIA…) and
// aws_secret_access_key values; OpenAI/Anthropic style "sk-…" keys; GitHub
// tokens (ghp_/gho_/ghu_/ghs_/ghr_, github_pat_); Slack xox?- tokens; Google
// "AIza…" keys; JWTs; "Bearer …" credentials; and assignments whose key names
// a secret (password, passwd, secret, token, api_key, apikey, access_key,
// private_key, client_secret) followed by = or :. A hand-written scanner, not
// regexes: linear time on any input. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace ds::memory {

struct Redaction {
  std::string text;
  int count = 0;  // how many secrets were replaced
};

Redaction RedactSecrets(std::string_view text);

}  // namespace ds::memory
