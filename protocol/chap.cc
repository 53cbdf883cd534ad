#include "protocol/chap.h"

#include <openssl/evp.h>

#include <memory>

namespace untorn::protocol {
namespace {

const EVP_MD* Digest(int algorithm) {
  switch (algorithm) {
    case 5:
      return EVP_md5();
    case 6:
      return EVP_sha1();
    case 7:
      return EVP_sha256();
    case 8:
      return EVP_sha3_256();
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<size_t> ChapDigestLength(int algorithm) {
  const EVP_MD* md = Digest(algorithm);
  if (md == nullptr) return std::nullopt;
  return static_cast<size_t>(EVP_MD_get_size(md));
}

std::vector<uint8_t> ChapResponse(int algorithm, uint8_t identifier, std::string_view secret,
                                  Bytes challenge) {
  const EVP_MD* md = Digest(algorithm);
  if (md == nullptr) return {};
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::vector<uint8_t> out(static_cast<size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), &identifier, 1) != 1 ||
      EVP_DigestUpdate(ctx.get(), secret.data(), secret.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), challenge.data(), challenge.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1) {
    return {};
  }
  out.resize(len);
  return out;
}

bool ConstantTimeEqual(Bytes a, Bytes b) {
  if (a.size() != b.size()) return false;
  uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<uint8_t>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace untorn::protocol
