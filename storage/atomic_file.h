// Small files replaced whole: written to PATH.tmp, synced, renamed over PATH, the directory
// synced. A crash leaves the old contents or the new, never a mix (the superblock's way, for
// state kept beside a LUN such as its persistent reservations).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "storage/file_system.h"

namespace untorn::storage {

Status WriteFileAtomically(FileSystem& fs, const std::string& path, std::span<const uint8_t> bytes);
// Removes PATH durably (the directory synced); nothing to do if it does not exist.
Status RemoveFileDurably(FileSystem& fs, const std::string& path);
// The whole file; kOutOfRange when it does not exist.
Status ReadWholeFile(FileSystem& fs, const std::string& path, std::vector<uint8_t>* out);

}  // namespace untorn::storage
