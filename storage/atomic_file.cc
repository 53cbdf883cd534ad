#include "storage/atomic_file.h"

namespace untorn::storage {

Status WriteFileAtomically(FileSystem& fs, const std::string& path,
                           std::span<const uint8_t> bytes) {
  const std::string tmp = path + ".tmp";
  std::unique_ptr<File> f;
  if (Status s = fs.Open(tmp, true, false, &f); !s.ok()) return s;
  if (Status s = f->Truncate(0); !s.ok()) return s;
  if (Status s = f->PWrite(0, bytes); !s.ok()) return s;
  if (Status s = f->Sync(); !s.ok()) return s;
  f.reset();
  if (Status s = fs.Rename(tmp, path); !s.ok()) return s;
  return fs.SyncDir(path);
}

Status RemoveFileDurably(FileSystem& fs, const std::string& path) {
  if (!fs.Exists(path)) return Status::Ok();
  if (Status s = fs.Remove(path); !s.ok()) return s;
  return fs.SyncDir(path);
}

Status ReadWholeFile(FileSystem& fs, const std::string& path, std::vector<uint8_t>* out) {
  if (!fs.Exists(path)) return Status::Error(Status::Code::kOutOfRange, path + " does not exist");
  std::unique_ptr<File> f;
  if (Status s = fs.Open(path, false, true, &f); !s.ok()) return s;
  out->assign(f->Size(), 0);
  return f->PRead(0, *out);
}

}  // namespace untorn::storage
