#include "app/output.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace ds::app {
namespace {

std::string Scalar(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_null()) return "-";
  if (v.is_double()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v.get_double());
    return buf;
  }
  if (v.is_array()) {
    std::string s;
    for (const auto& item : v.get_array()) {
      if (!s.empty()) s += ", ";
      if (item.is_object() && item.get_object().contains("id")) {
        s += Scalar(item.get_object().at("id"));
        if (item.get_object().contains("kind"))
          s += " (" + Scalar(item.get_object().at("kind")) + ")";
      } else {
        s += Scalar(item);
      }
    }
    return s.empty() ? "-" : s;
  }
  return ToJsonString(v);
}

}  // namespace

void Output::Object(const json::object& o) const {
  if (json) {
    std::cout << ToJsonString(o) << "\n";
    return;
  }
  size_t width = 0;
  for (const auto& kv : o) width = std::max(width, kv.key().size());
  for (const auto& kv : o) {
    std::string key(kv.key());
    if (kv.value().is_object()) {
      std::cout << key << ":\n";
      for (const auto& inner : kv.value().get_object()) {
        std::cout << "  " << std::string(inner.key()) << ": " << Scalar(inner.value()) << "\n";
      }
      continue;
    }
    std::cout << key << std::string(width - key.size(), ' ') << "  " << Scalar(kv.value()) << "\n";
  }
}

void Output::List(const json::array& items, const std::vector<std::string>& columns,
                  const json::value& next_cursor) const {
  if (json) {
    std::cout << ToJsonString(json::object{{"items", items}, {"next_cursor", next_cursor}}) << "\n";
    return;
  }
  if (items.empty()) {
    std::cout << "(none)\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> width;
  for (const auto& c : columns) width.push_back(c.size());
  for (const auto& item : items) {
    std::vector<std::string> row;
    for (size_t i = 0; i < columns.size(); ++i) {
      std::string cell = "-";
      if (item.is_object() && item.get_object().contains(columns[i])) {
        cell = Scalar(item.get_object().at(columns[i]));
      }
      if (cell.size() > 60) cell = cell.substr(0, 57) + "...";
      width[i] = std::max(width[i], cell.size());
      row.push_back(std::move(cell));
    }
    rows.push_back(std::move(row));
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  std::vector<std::string> header;
  for (const auto& c : columns) {
    std::string h = c;
    std::transform(h.begin(), h.end(), h.begin(), ::toupper);
    header.push_back(h);
  }
  print_row(header);
  for (const auto& r : rows) print_row(r);
  if (next_cursor.is_string()) {
    std::cout << "(more: --cursor " << std::string(next_cursor.get_string()) << ")\n";
  }
}

void Output::Message(const std::string& text) const {
  if (json) {
    std::cout << ToJsonString(json::object{{"ok", true}, {"message", text}}) << "\n";
  } else {
    std::cout << text << "\n";
  }
}

}  // namespace ds::app
