// Status is the outcome of an operation that can fail: a code, a human-readable
// message and optional structured details (e.g. the allowed transitions of a 409).
// Result<T> is either a value or a non-OK Status. Errors never cross module
// boundaries as exceptions; every public service call returns one of these.
// Both are plain values: copyable, not synchronised.
#pragma once

#include <boost/json/object.hpp>

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ds {

enum class StatusCode {
  kOk = 0,
  kMalformed,           // request cannot be parsed (HTTP 400, JSON-RPC -32700)
  kInvalidArgument,     // parsed but fails validation (HTTP 422, JSON-RPC -32602)
  kNotFound,            // 404
  kConflict,            // illegal transition, cycle, unmet dependency, duplicate (409)
  kPreconditionFailed,  // stale version / If-Match (412)
  kTooLarge,            // 413
  kUnauthorized,        // 401
  kForbidden,           // 403
  kRateLimited,         // 429
  kUnavailable,         // transient: busy database, shutting down (503)
  kInternal,            // a bug or an I/O failure (500)
};

class Status {
 public:
  Status() = default;  // OK

  static Status Ok() { return Status(); }
  static Status Malformed(std::string msg) { return {StatusCode::kMalformed, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status Conflict(std::string msg) { return {StatusCode::kConflict, std::move(msg)}; }
  static Status PreconditionFailed(std::string msg) {
    return {StatusCode::kPreconditionFailed, std::move(msg)};
  }
  static Status TooLarge(std::string msg) { return {StatusCode::kTooLarge, std::move(msg)}; }
  static Status Unauthorized(std::string msg) {
    return {StatusCode::kUnauthorized, std::move(msg)};
  }
  static Status Forbidden(std::string msg) { return {StatusCode::kForbidden, std::move(msg)}; }
  static Status RateLimited(std::string msg) { return {StatusCode::kRateLimited, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Structured extension members (RFC 9457) such as {"allowed": [...]}.
  const boost::json::object& details() const { return details_; }
  Status& WithDetail(std::string_view key, boost::json::value value) {
    details_[key] = std::move(value);
    return *this;
  }

  // A short machine name for the code: "not_found", "conflict", ...
  std::string_view CodeName() const;
  // "not_found: task tsk_... does not exist"
  std::string ToString() const;

 private:
  Status(StatusCode code, std::string msg) : code_(code), message_(std::move(msg)) {}

  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  boost::json::object details_;
};

// The HTTP status for a code, and the title used in problem+json.
int HttpStatusFor(StatusCode code);
std::string_view TitleFor(StatusCode code);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace ds

// Propagates a non-OK Status out of the enclosing function.
#define DS_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::ds::Status ds_status_ = (expr);        \
    if (!ds_status_.ok()) return ds_status_; \
  } while (0)

#define DS_CONCAT_INNER(a, b) a##b
#define DS_CONCAT(a, b) DS_CONCAT_INNER(a, b)
// Declares `lhs` from a Result's value, or returns its Status. `lhs` may be a
// declaration ("Plan p"), so it cannot be parenthesised.
#define DS_ASSIGN_OR_RETURN(lhs, expr) \
  DS_ASSIGN_OR_RETURN_IMPL(DS_CONCAT(ds_result_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define DS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
