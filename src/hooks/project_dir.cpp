#include "hooks/project_dir.h"

#include <filesystem>

namespace ds::hooks {

ProjectDir FindProjectDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::path(dir.empty() ? "." : dir), ec);
  if (ec || p.empty()) return {};
  for (fs::path q = p; !q.empty(); q = q.parent_path()) {
    if (fs::exists(q / ".git", ec)) return {q.string(), q.filename().string()};
    if (q == q.parent_path()) break;
  }
  std::string name = p.filename().string();
  if (name.empty() || name == "/") return {p.string(), ""};
  return {p.string(), name};
}

}  // namespace ds::hooks
