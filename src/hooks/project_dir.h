// Which project a working directory belongs to: the nearest enclosing git
// root (a directory holding .git), else the directory itself. The project's
// name is that directory's base name. Used by hooks and `devstream mcp` so
// an assistant working in a repository lands in the same project both ways.
// Thread-safety: pure apart from reading the file system.
#pragma once

#include <string>

namespace ds::hooks {

struct ProjectDir {
  std::string root;  // absolute; "" when `dir` is unusable
  std::string name;  // "" when no name can be derived (e.g. "/")
};

ProjectDir FindProjectDir(const std::string& dir);

}  // namespace ds::hooks
