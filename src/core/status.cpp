#include "core/status.h"

namespace ds {

std::string_view Status::CodeName() const {
  switch (code_) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kMalformed:
      return "malformed";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kConflict:
      return "conflict";
    case StatusCode::kPreconditionFailed:
      return "precondition_failed";
    case StatusCode::kTooLarge:
      return "too_large";
    case StatusCode::kUnauthorized:
      return "unauthorized";
    case StatusCode::kForbidden:
      return "forbidden";
    case StatusCode::kRateLimited:
      return "rate_limited";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName()) + ": " + message_;
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kMalformed:
      return 400;
    case StatusCode::kInvalidArgument:
      return 422;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kConflict:
      return 409;
    case StatusCode::kPreconditionFailed:
      return 412;
    case StatusCode::kTooLarge:
      return 413;
    case StatusCode::kUnauthorized:
      return 401;
    case StatusCode::kForbidden:
      return 403;
    case StatusCode::kRateLimited:
      return 429;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

std::string_view TitleFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kMalformed:
      return "Malformed request";
    case StatusCode::kInvalidArgument:
      return "Validation failed";
    case StatusCode::kNotFound:
      return "Not found";
    case StatusCode::kConflict:
      return "Conflict";
    case StatusCode::kPreconditionFailed:
      return "Precondition failed";
    case StatusCode::kTooLarge:
      return "Payload too large";
    case StatusCode::kUnauthorized:
      return "Unauthorized";
    case StatusCode::kForbidden:
      return "Forbidden";
    case StatusCode::kRateLimited:
      return "Too many requests";
    case StatusCode::kUnavailable:
      return "Service unavailable";
    case StatusCode::kInternal:
      return "Internal error";
  }
  return "Error";
}

}  // namespace ds
