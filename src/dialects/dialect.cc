#include "dialects/dialect.h"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace backstop::dialects {
namespace {

core::Error no_upstream_side(const Dialect& dialect) {
  return core::Error{core::ErrorCode::kInternal,
                     "dialect " + std::string(dialect.name()) + " speaks to no upstream"};
}

}  // namespace

core::Result<chat::ChatRequest> Dialect::decode_count_tokens_request(std::string_view) const {
  return core::fail(core::ErrorCode::kNotFound,
                    "dialect " + std::string(name()) + " counts no tokens");
}

std::string Dialect::encode_models(std::span<const std::string_view> names) const {
  boost::json::array data;
  for (std::string_view n : names) {
    data.push_back({{"id", n}, {"object", "model"}, {"created", 0}, {"owned_by", "backstop"}});
  }
  return boost::json::serialize(boost::json::object{{"object", "list"}, {"data", std::move(data)}});
}

std::vector<std::pair<std::string, std::string>> Dialect::upstream_headers(
    const UpstreamSettings&) const {
  return {};
}

std::string Dialect::encode_request(const chat::ChatRequest&, std::string_view,
                                    const UpstreamSettings&) const {
  return {};
}

core::Result<chat::ChatResponse> Dialect::decode_response(std::string_view) const {
  return std::unexpected(no_upstream_side(*this));
}

std::unique_ptr<StreamReader> Dialect::stream_reader() const { return nullptr; }

std::string Dialect::upstream_error_message(std::string_view body) const {
  return std::string(body.substr(0, 300));
}

std::optional<std::string> Dialect::upstream_error_code(std::string_view) const {
  return std::nullopt;
}

}  // namespace backstop::dialects
