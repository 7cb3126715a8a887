// Secret redaction: every supported format is replaced by [REDACTED], text
// without secrets is byte-identical, and large inputs finish (linear scan).
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "memory/redaction.h"

namespace ds::memory {
namespace {

struct SecretCase {
  std::string name;
  std::string input;
  std::vector<std::string> secrets;  // substrings that must be gone
  std::vector<std::string> kept;     // substrings that must survive
};

const std::string kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

std::vector<SecretCase> SecretCases() {
  return {
      {"pem rsa private key",
       "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bqXy0abcdef\nQWERTYuiop123456\n"
       "-----END RSA PRIVATE KEY-----\nafter",
       {"MIIEowIBAAKCAQEA7bqXy0abcdef", "QWERTYuiop123456", "BEGIN RSA PRIVATE KEY"},
       {"key:", "after"}},
      {"pem openssh private key",
       "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       "-----END OPENSSH PRIVATE KEY-----",
       {"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"},
       {}},
      {"pem pkcs8 private key",
       "x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY----- "
       "y",
       {"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"},
       {"x ", " y"}},
      {"pem ec private key unterminated",
       "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oY1NRQy",
       {"MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oY1NRQy"},
       {}},
      {"aws access key id",
       "aws key AKIAIOSFODNN7EXAMPLE in config",
       {"AKIAIOSFODNN7EXAMPLE"},
       {"aws key ", " in config"}},
      {"aws temporary key id", "id=ASIAY34FZKBOKMUTVV7A;", {"ASIAY34FZKBOKMUTVV7A"}, {}},
      {"aws secret access key",
       "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\nregion=eu-west-1",
       {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
       {"aws_secret_access_key=", "region=eu-west-1"}},
      {"aws secret env style",
       "export AWS_SECRET_ACCESS_KEY=\"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
       {"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
       {"export AWS_SECRET_ACCESS_KEY="}},
      {"openai sk key",
       "use sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD for tests",
       {"sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD"},
       {"use ", " for tests"}},
      {"openai project key",
       "OPENAI: sk-proj-Abc123_def456-GHI789jklMNO012pqrSTU345vwx done",
       {"sk-proj-Abc123_def456-GHI789jklMNO012pqrSTU345vwx", "Abc123_def456"},
       {"OPENAI: ", " done"}},
      {"anthropic key",
       "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdefgh",
       {"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"},
       {}},
      {"github classic token",
       "token ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij used",
       {"ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"},
       {" used"}},
      {"github oauth token",
       "(gho_16C7e42F292c6912E7710c838347Ae178B4a)",
       {"gho_16C7e42F292c6912E7710c838347Ae178B4a"},
       {"(", ")"}},
      {"github fine-grained pat",
       "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTU",
       {"11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"},
       {}},
      {"slack bot token",
       "SLACK=xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
       {"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx"},
       {"SLACK="}},
      {"google api key",
       "key: AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe.",
       {"AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "SyDaGmWKa4JsXZ"},
       {}},
      {"jwt",
       "cookie session=" + kJwt + "; Path=/",
       {kJwt, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"},
       {"; Path=/"}},
      {"authorization bearer",
       "Authorization: Bearer abcDEF123456.ghiJKL789-xyz_~+/=\nHost: x",
       {"abcDEF123456", "ghiJKL789"},
       {"Authorization: Bearer ", "\nHost: x"}},
      {"bearer jwt",
       "curl -H 'Authorization: Bearer " + kJwt + "' https://api",
       {kJwt},
       {"curl -H 'Authorization: Bearer ", "' https://api"}},
      {"password assignment",
       "password=hunter2hunter2 and more",
       {"hunter2hunter2"},
       {"password=", " and more"}},
      {"password with spaces", "password = s3cr3tP4ss", {"s3cr3tP4ss"}, {"password = "}},
      {"db password yaml quoted",
       "DB_PASSWORD: \"correct horse battery staple\"\nDB_USER: app",
       {"correct horse battery staple", "horse"},
       {"DB_PASSWORD: \"", "DB_USER: app"}},
      {"db password single quoted", "DB_PASSWORD='Tr0ub4dor&3'", {"Tr0ub4dor&3"}, {}},
      {"api key yaml",
       "api_key: abcd1234efgh5678\nother: 1",
       {"abcd1234efgh5678"},
       {"api_key: ", "other: 1"}},
      {"api key json",
       "{\"api_key\": \"abcd1234efgh5678\", \"name\": \"svc\"}",
       {"abcd1234efgh5678"},
       {"\"name\": \"svc\"", "\"api_key\": \""}},
      {"client secret", "client_secret=9f8e7d6c5b4a39281706", {"9f8e7d6c5b4a39281706"}, {}},
      {"url query token",
       "GET /cb?code=1&access_token=ya29.a0AfH6SMBxyz123&state=ok",
       {"ya29.a0AfH6SMBxyz123"},
       {"&state=ok"}},
      {"env github token",
       "export GITHUB_TOKEN=ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
       {"ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"},
       {"export GITHUB_TOKEN="}},
      {"two secrets on one line",
       "AKIAIOSFODNN7EXAMPLE then password=hunter2hunter2",
       {"AKIAIOSFODNN7EXAMPLE", "hunter2hunter2"},
       {" then "}},
  };
}

TEST(MemoryRedactionTest, EverySupportedFormatIsRedacted) {
  for (const auto& c : SecretCases()) {
    Redaction r = RedactSecrets(c.input);
    EXPECT_GE(r.count, 1) << c.name << " -> " << r.text;
    EXPECT_NE(r.text.find("[REDACTED]"), std::string::npos) << c.name << " -> " << r.text;
    for (const auto& s : c.secrets) {
      EXPECT_EQ(r.text.find(s), std::string::npos)
          << c.name << ": secret \"" << s << "\" still present in: " << r.text;
    }
    for (const auto& k : c.kept) {
      EXPECT_NE(r.text.find(k), std::string::npos)
          << c.name << ": \"" << k << "\" should survive in: " << r.text;
    }
    // Idempotent: redacting again finds nothing new.
    Redaction again = RedactSecrets(r.text);
    EXPECT_EQ(again.text, r.text) << c.name;
    EXPECT_EQ(again.count, 0) << c.name << " -> " << again.text;
  }
}

TEST(MemoryRedactionTest, ExactOutputForSimpleCases) {
  EXPECT_EQ(RedactSecrets("password=hunter2hunter2").text, "password=[REDACTED]");
  EXPECT_EQ(RedactSecrets("Authorization: Bearer abcdefgh12345678").text,
            "Authorization: Bearer [REDACTED]");
  EXPECT_EQ(RedactSecrets("id AKIAIOSFODNN7EXAMPLE.").text, "id [REDACTED].");
  EXPECT_EQ(RedactSecrets("DB_PASSWORD: \"abc def ghi\"").text, "DB_PASSWORD: \"[REDACTED]\"");
  Redaction two = RedactSecrets("a AKIAIOSFODNN7EXAMPLE b AKIAI44QH8DHBEXAMPLE c");
  EXPECT_EQ(two.count, 2);
  EXPECT_EQ(two.text, "a [REDACTED] b [REDACTED] c");
}

TEST(MemoryRedactionTest, TextWithoutSecretsIsByteIdentical) {
  const std::vector<std::string> cases = {
      "",
      "The quick brown fox jumps over the lazy dog.",
      "Implement the password reset flow with an emailed one-time link.",
      "password reset flow",
      "password = os.getenv(\"X\")",
      "password = os.environ[\"DB_PASSWORD\"]",
      "token count",
      "The token count for this prompt was 1200.",
      "password=abc",
      "token: xyz",
      "secret: 123",
      "password: ${DB_PASSWORD}",
      "password=<your password here>",
      "\"password\": null",
      "api_key: {{ vault_api_key }}",
      "for (int i = 0; i < n; ++i) { sum += v[i]; }",
      "def add(a, b):\n    return a + b\n",
      "SELECT id, title FROM tasks WHERE status = 'pending' ORDER BY priority DESC;",
      "git commit -m \"fix: handle EOF in the lexer\"",
      "the bearer of bad news",
      "AKIA is the prefix of long-term AWS access key ids",
      "AKIA1234 is too short to be a key id",
      "sk-short and sk-learn are not keys",
      "ghp_ tokens start with ghp_",
      "eyJ is how a JWT header starts; eyJ.abc is not one",
      "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1L\n-----END "
      "PUBLIC KEY-----",
      "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n-----END "
      "CERTIFICATE-----",
      "## Secrets management\nStore secrets in Vault, never in the repository.",
      "naïve café — 日本語 テキスト 🔥",
      std::string("binary\0data\xff\xfe", 13),
      "----- separator -----",
      "xoxb- is the Slack bot token prefix",
  };
  for (const auto& c : cases) {
    Redaction r = RedactSecrets(c);
    EXPECT_EQ(r.text, c) << "changed: " << c;
    EXPECT_EQ(r.count, 0) << c;
  }
}

// Identifiers and prose that merely contain a secret-ish word are common in
// code memories; redacting them destroys useful content.
TEST(MemoryRedactionTest, IdentifiersContainingSecretWordsAreNotRedacted) {
  const std::vector<std::string> cases = {
      "max_tokens = 4096",
      "response = client.complete(prompt, max_tokens=4096)",
      "int token_count = CountTokens(text);",
      "const passwordField = document.getElementById(\"pw\");",
      "Clients use Bearer authentication for every request.",
  };
  for (const auto& c : cases) {
    Redaction r = RedactSecrets(c);
    EXPECT_EQ(r.text, c);
    EXPECT_EQ(r.count, 0) << c;
  }
}

std::string Repeat(std::string_view unit, size_t bytes) {
  std::string s;
  s.reserve(bytes + unit.size());
  while (s.size() < bytes) s += unit;
  return s;
}

constexpr size_t kFiveMb = 5u << 20;

TEST(MemoryRedactionTest, FiveMegabyteInputsFinish) {
  // Ordinary text with secrets sprinkled in.
  {
    std::string unit =
        "Refactored the lease reaper; see task tsk_01 and AKIAIOSFODNN7EXAMPLE. The config "
        "has password=hunter2hunter2 and\nAuthorization: Bearer abcdefgh12345678 for the API.\n";
    std::string s = Repeat(unit, kFiveMb);
    size_t reps = s.size() / unit.size();
    Redaction r = RedactSecrets(s);
    EXPECT_EQ(r.count, static_cast<int>(reps * 3));
    EXPECT_EQ(r.text.find("hunter2hunter2"), std::string::npos);
    EXPECT_EQ(r.text.find("AKIAIOSFODNN7EXAMPLE"), std::string::npos);
  }
  // Degenerate inputs around each matcher's trigger.
  for (std::string_view unit :
       {"a", " ", "-", "-----BEGIN ", "-----BEGIN X-----", "eyJaaaa.", "eyJ", "Bearer ",
        "Bearer x ", "sk-", "AKIA", "AKIAAAAA ", "ghp_", "xoxb-", "AIza", "password ",
        "password: \"", "\"password\": \"hunter2hunter2\", ", "é日"}) {
    std::string s = Repeat(unit, kFiveMb);
    Redaction r = RedactSecrets(s);
    EXPECT_LE(r.text.size(), s.size() + static_cast<size_t>(r.count) * 10) << unit;
  }
  // Random bytes.
  {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> byte(0, 255);
    std::string s(kFiveMb, '\0');
    for (auto& ch : s) ch = static_cast<char>(byte(rng));
    Redaction r = RedactSecrets(s);
    EXPECT_GE(r.text.size(), s.size() / 2);
  }
}

TEST(MemoryRedactionTest, FiveMegabyteAssignmentsWithRejectedValuesFinish) {
  // Each "password=$x..." start scans its unquoted value to the next
  // delimiter; when there is none, the scan runs to the end of the input and
  // the value is then rejected as a placeholder, so the next start scans
  // again: O(n^2). Measured (release build): 100 KB 145 ms, 400 KB 2.2 s.
  for (std::string_view unit : {"password=$x", "token=getenv", "apikey:{"}) {
    std::string s = Repeat(unit, kFiveMb);
    Redaction r = RedactSecrets(s);
    EXPECT_EQ(r.text, s);
  }
}

}  // namespace
}  // namespace ds::memory
