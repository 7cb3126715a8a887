// Signed tokens (core/signing.h): round trips, and refusal of altered tokens,
// tokens signed under another secret, and malformed ones.
#include <gtest/gtest.h>

#include "core/encoding.h"
#include "core/signing.h"

namespace ds {
namespace {

class SigningTest : public ::testing::Test {
 protected:
  void TearDown() override { SetSigningKey(""); }
};

TEST_F(SigningTest, CursorsRoundTripAndRefuseTampering) {
  SetSigningKey(std::string(40, 'a'));
  std::string c = EncodeCursor("after:tsk_01");
  EXPECT_EQ(DecodeCursor(c).value(), "after:tsk_01");
  EXPECT_EQ(DecodeCursor(std::nullopt).value(), "");
  EXPECT_EQ(DecodeCursor(std::string()).value(), "");

  // The unsigned form a client might build by hand.
  EXPECT_FALSE(DecodeCursor(Base64UrlEncode("after:tsk_01")).has_value());
  // Another position with the MAC of the first.
  std::string forged = Base64UrlEncode("after:tsk_99") + c.substr(c.rfind('.'));
  EXPECT_FALSE(DecodeCursor(forged).has_value());
  // One changed character anywhere.
  for (size_t i = 0; i < c.size(); ++i) {
    std::string t = c;
    t[i] = t[i] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(DecodeCursor(t).has_value()) << i;
  }
  EXPECT_FALSE(DecodeCursor(std::string(600, 'a')).has_value());
  EXPECT_FALSE(DecodeCursor(std::string("no-dot")).has_value());
}

TEST_F(SigningTest, RotatingTheSecretInvalidatesIssuedTokens) {
  SetSigningKey(std::string(40, 'a'));
  std::string token = Sign("session-1");
  EXPECT_EQ(Verify(token).value(), "session-1");
  SetSigningKey(std::string(40, 'b'));
  EXPECT_FALSE(Verify(token).has_value());
  SetSigningKey(std::string(40, 'a'));
  EXPECT_TRUE(Verify(token).has_value());
}

}  // namespace
}  // namespace ds
