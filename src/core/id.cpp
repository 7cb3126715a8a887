#include "core/id.h"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <mutex>

#include "core/clock.h"

namespace ds {
namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void EnsureSodium() {
  static const int init = sodium_init();
  (void)init;
}

struct IdState {
  std::mutex mu;
  int64_t last_ms = -1;
  std::array<uint8_t, 10> last_rand{};
};

IdState& State() {
  static IdState s;
  return s;
}

}  // namespace

std::string NewId(std::string_view prefix) {
  EnsureSodium();
  std::array<uint8_t, 16> bytes{};
  {
    IdState& st = State();
    std::lock_guard<std::mutex> lock(st.mu);
    int64_t ms = NowMillis();
    if (ms <= st.last_ms) {
      ms = st.last_ms;
      // Increment the 80-bit random part so same-millisecond ids stay ordered.
      for (int i = 9; i >= 0; --i) {
        if (++st.last_rand[i] != 0) break;
      }
    } else {
      randombytes_buf(st.last_rand.data(), st.last_rand.size());
      st.last_rand[0] &= 0x7f;  // headroom so increments never wrap
      st.last_ms = ms;
    }
    for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
    for (int i = 0; i < 10; ++i) bytes[6 + i] = st.last_rand[i];
  }
  // 128 bits -> 26 base32 chars (first char carries 3 bits).
  std::string out(prefix);
  out.push_back('_');
  unsigned __int128 v = 0;
  for (uint8_t b : bytes) v = (v << 8) | b;
  char buf[26];
  for (int i = 25; i >= 0; --i) {
    buf[i] = kCrockford[static_cast<unsigned>(v & 31)];
    v >>= 5;
  }
  out.append(buf, 26);
  return out;
}

bool IsValidId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 27) return false;
  if (id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') return false;
  for (char c : id.substr(prefix.size() + 1)) {
    bool ok = false;
    for (const char* p = kCrockford; *p; ++p) ok |= (*p == c);
    if (!ok) return false;
  }
  return id[prefix.size() + 1] <= '7';
}

std::string RandomHex(size_t n) {
  EnsureSodium();
  std::string raw(n, '\0');
  randombytes_buf(raw.data(), n);
  std::string hex(2 * n + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()), n);
  hex.pop_back();
  return hex;
}

std::string CorrelationId() {
  constexpr size_t kBytes = 16;
  thread_local unsigned char pool[4096];
  thread_local size_t used = sizeof pool;
  if (used + kBytes > sizeof pool) {
    EnsureSodium();
    randombytes_buf(pool, sizeof pool);
    used = 0;
  }
  char hex[2 * kBytes + 1];
  sodium_bin2hex(hex, sizeof hex, pool + used, kBytes);
  sodium_memzero(pool + used, kBytes);
  used += kBytes;
  return std::string(hex, 2 * kBytes);
}

std::string Blake2bHex(std::string_view data) {
  EnsureSodium();
  unsigned char out[32];
  crypto_generichash(out, sizeof out, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size(), nullptr, 0);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, out, sizeof out);
  return hex;
}

}  // namespace ds
