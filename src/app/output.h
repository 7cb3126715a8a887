// Printing service results for the CLI: JSON (--json, for scripts) or a
// human-readable form (key: value blocks, and aligned tables for lists).
// Stateless; not synchronised (writes to stdout).
#pragma once

#include <string>
#include <vector>

#include "core/json.h"

namespace ds::app {

struct Output {
  bool json = false;

  // One resource: JSON, or "key: value" lines in the object's order.
  void Object(const json::object& o) const;
  // A list of resources: JSON {"items": [...]}, or a table of `columns`.
  void List(const json::array& items, const std::vector<std::string>& columns,
            const json::value& next_cursor = nullptr) const;
  // A short confirmation ("deleted tsk_…"): JSON {"ok": true, "message": …} or text.
  void Message(const std::string& text) const;
};

}  // namespace ds::app
