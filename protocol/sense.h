// SCSI status and sense data (SPC-4 §4.5): fixed-format sense with the sense-key specific field
// pointer, and the sense triples untorn reports. The only place sense bytes are built.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace untorn::protocol {

enum class ScsiStatus : uint8_t {
  kGood = 0x00,
  kCheckCondition = 0x02,
  kConditionMet = 0x04,
  kBusy = 0x08,
  kReservationConflict = 0x18,
  kTaskSetFull = 0x28,
  kTaskAborted = 0x40,
};

enum class SenseKey : uint8_t {
  kNoSense = 0x0,
  kNotReady = 0x2,
  kMediumError = 0x3,
  kHardwareError = 0x4,
  kIllegalRequest = 0x5,
  kUnitAttention = 0x6,
  kDataProtect = 0x7,
  kAbortedCommand = 0xb,
  kMiscompare = 0xe,
};

// SPC-4 §4.5.2.4.2: which byte (and optionally bit) of the CDB or parameter list is wrong.
struct FieldPointer {
  bool in_cdb = true;
  uint16_t byte = 0;
  std::optional<uint8_t> bit;
};

struct Sense {
  SenseKey key = SenseKey::kNoSense;
  uint8_t asc = 0, ascq = 0;
  std::optional<FieldPointer> field;
  std::optional<uint32_t> information;  // e.g. offset of the first miscompare
  bool operator==(const Sense& o) const { return key == o.key && asc == o.asc && ascq == o.ascq; }
};

// 18-byte fixed-format sense (response code 70h, SPC-4 table 48).
[[nodiscard]] std::vector<uint8_t> EncodeFixedSense(const Sense& s);

// Named sense triples (SPC-4 annex D).
namespace sense {
inline Sense InvalidOpcode() {
  return {SenseKey::kIllegalRequest, 0x20, 0x00, FieldPointer{true, 0, 7}};
}
inline Sense InvalidFieldInCdb(uint16_t byte, std::optional<uint8_t> bit = std::nullopt) {
  return {SenseKey::kIllegalRequest, 0x24, 0x00, FieldPointer{true, byte, bit}};
}
inline Sense InvalidFieldInParameterList(uint16_t byte, std::optional<uint8_t> bit = std::nullopt) {
  return {SenseKey::kIllegalRequest, 0x26, 0x00, FieldPointer{false, byte, bit}};
}
inline Sense ParameterListLengthError() { return {SenseKey::kIllegalRequest, 0x1a, 0x00}; }
inline Sense LbaOutOfRange() { return {SenseKey::kIllegalRequest, 0x21, 0x00}; }
inline Sense LunNotSupported() { return {SenseKey::kIllegalRequest, 0x25, 0x00}; }
inline Sense SavingParametersNotSupported() { return {SenseKey::kIllegalRequest, 0x39, 0x00}; }
inline Sense InvalidReleaseOfPersistentReservation() {
  return {SenseKey::kIllegalRequest, 0x26, 0x04};
}
inline Sense InsufficientRegistrationResources() { return {SenseKey::kIllegalRequest, 0x55, 0x04}; }
inline Sense WriteProtected() { return {SenseKey::kDataProtect, 0x27, 0x00}; }
// SBC-4 thin provisioning: the LU has no physical space left for the write. Linux's sd reports it
// as ENOSPC, no retries.
inline Sense SpaceAllocationFailedWriteProtect() { return {SenseKey::kDataProtect, 0x27, 0x07}; }
inline Sense UnrecoveredReadError() { return {SenseKey::kMediumError, 0x11, 0x00}; }
inline Sense WriteError() { return {SenseKey::kMediumError, 0x0c, 0x00}; }
inline Sense InternalTargetFailure() { return {SenseKey::kHardwareError, 0x44, 0x00}; }
inline Sense MiscompareDuringVerify() { return {SenseKey::kMiscompare, 0x1d, 0x00}; }
inline Sense PowerOnOrReset() { return {SenseKey::kUnitAttention, 0x29, 0x00}; }
inline Sense ModeParametersChanged() { return {SenseKey::kUnitAttention, 0x2a, 0x01}; }
inline Sense ReservationsPreempted() { return {SenseKey::kUnitAttention, 0x2a, 0x03}; }
inline Sense ReservationsReleased() { return {SenseKey::kUnitAttention, 0x2a, 0x04}; }
inline Sense RegistrationsPreempted() { return {SenseKey::kUnitAttention, 0x2a, 0x05}; }
inline Sense CapacityDataChanged() { return {SenseKey::kUnitAttention, 0x2a, 0x09}; }
inline Sense ReportedLunsDataChanged() { return {SenseKey::kUnitAttention, 0x3f, 0x0e}; }
inline Sense CommandsClearedByAnotherInitiator() { return {SenseKey::kUnitAttention, 0x2f, 0x00}; }
inline Sense MediumNotPresent() { return {SenseKey::kNotReady, 0x3a, 0x00}; }
inline Sense LogicalUnitNotReadyStopped() { return {SenseKey::kNotReady, 0x04, 0x02}; }
}  // namespace sense

}  // namespace untorn::protocol
