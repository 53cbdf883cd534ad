// libFuzzer target: text keys (RFC 7143 §6) and operational negotiation. The input is a
// Login/Text data segment; parsed keys are answered by a fresh Negotiator as an initiator's
// offers would be, twice (the second round must not crash on re-declared keys).
#include <cstddef>
#include <cstdint>

#include "protocol/negotiation.h"
#include "protocol/text_keys.h"

using namespace untorn::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  const auto keys = ParseTextKeys(Bytes(data, size), &error);
  if (!keys) return 0;
  KeyList offers;
  for (const TextKey& kv : *keys) {
    (void)ParseNumber(kv.value);
    (void)ParseBinary(kv.value);
    if (Negotiator::Handles(kv.key)) offers.push_back(kv);
  }
  // What the target sends back must parse again.
  if (!ParseTextKeys(EncodeTextKeys(*keys), &error)) __builtin_trap();
  Negotiator n(TargetCapabilities{});
  KeyList answers;
  if (n.Respond(offers, &answers, &error)) {
    KeyList again;
    (void)n.Respond(offers, &again, &error);
  }
  n.Finish(&answers);
  const SessionParams& p = n.params();
  // The negotiated values never exceed what the target offers.
  if (p.first_burst_length > p.max_burst_length && p.max_burst_length != 0) __builtin_trap();
  return 0;
}
