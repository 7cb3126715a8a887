// Fuzz target: raw bytes as HTTP/1.1 traffic on one connection. Beast's
// request_parser (the server's 16 KiB header limit; a 64 KiB body limit
// instead of 1 MiB keeps inputs cheap) reads up to four pipelined requests;
// each is turned into an api::Request the way HttpServer does (including its
// refusal of a Transfer-Encoding that does not end in chunked) and
// dispatched through the real Router and RequestGuard,
// and the response is serialised as the server would write it. Parse errors
// get the server's 400/413/431 problem answers. $NAME placeholders in the
// input name fixture ids and API keys (see fuzz_world.h).
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_world.h"

namespace {

namespace http = boost::beast::http;
using ds::fuzz::CheckResponse;
using ds::fuzz::World;

constexpr size_t kHeaderLimit = 16 * 1024;
constexpr size_t kBodyLimit = 64 * 1024;
constexpr int kMaxRequests = 4;

// Builds the api::Request from what the parser saw (HttpServer::FillRequest).
ds::api::Request ToRequest(http::request_parser<http::string_body>& parser, bool with_body) {
  auto& msg = parser.get();
  ds::api::Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  for (const auto& field : msg) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    req.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  if (with_body) req.body = std::move(msg.body());
  req.request_id = ds::api::ChooseRequestId(req.Header("x-request-id"));
  return req;
}

// Writes the response the way HttpServer::Send does.
void Serialise(const ds::api::Request& req, const ds::api::Response& res, unsigned version) {
  http::response<http::string_body> wire;
  wire.version(version);
  wire.result(static_cast<unsigned>(res.status));
  wire.set(http::field::server, "devstream");
  wire.set("X-Request-Id", req.request_id);
  for (const auto& [name, value] : res.headers) wire.insert(name, value);
  if (res.status != 204 && res.status != 304) {
    if (!res.content_type.empty()) wire.set(http::field::content_type, res.content_type);
    wire.content_length(res.body.size());
    if (req.method != "HEAD") wire.body() = res.body;
  }
  std::ostringstream out;
  out << wire;
  if (out.str().empty()) ds::fuzz::Fail("empty serialised response");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& world = World::Get();
  std::string input = world.Substitute(ds::fuzz::AsString(data, size));
  std::string_view rest(input);
  for (int i = 0; i < kMaxRequests && !rest.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    parser.eager(true);
    boost::beast::error_code ec;
    for (;;) {
      size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(std::min(used, rest.size()));
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec || parser.is_done() || used == 0) break;
    }
    if (!ec && !parser.is_done()) {
      // The client closed: end of stream completes bodies without a length.
      parser.put_eof(ec);
      if (!ec && !parser.is_done()) return 0;
    }
    // HttpServer refuses a Transfer-Encoding that does not end in chunked.
    if (!ec && parser.get().find(http::field::transfer_encoding) != parser.get().end() &&
        !parser.chunked()) {
      ec = http::error::bad_transfer_encoding;
    }
    ds::api::Response res;
    ds::api::Request req;
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) {
      return 0;  // the server closes without answering
    } else if (ec == http::error::body_limit) {
      req = ToRequest(parser, false);
      res = ds::api::ProblemResponse(ds::Status::TooLarge("request body too large"), req);
    } else if (ec == http::error::header_limit) {
      req = ToRequest(parser, false);
      res = ds::api::ProblemResponse(431, "request header too large", req);
    } else if (ec) {
      req = ToRequest(parser, false);
      res = ds::api::ProblemResponse(
          ds::Status::Malformed("malformed HTTP request: " + ec.message()), req);
    } else {
      req = ToRequest(parser, true);
      res = world.Serve(req);
    }
    CheckResponse(req, res);
    Serialise(req, res, parser.get().version() == 10 ? 10 : 11);
    if (ec || !parser.get().keep_alive()) return 0;
  }
  return 0;
}
