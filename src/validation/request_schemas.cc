#include <string>
#include <string_view>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

constexpr std::size_t kMaxName = 64;  // a tool name quoted in the message

core::Error invalid(std::string message) {
  return core::Error{core::ErrorCode::kInvalidArgument, std::move(message)};
}

}  // namespace

std::optional<core::Error> check_request_schemas(const chat::ChatRequest& request,
                                                 SchemaCache& schemas, SchemaFields fields) {
  for (std::size_t i = 0; i < request.tools.size(); ++i) {
    const chat::Tool& tool = request.tools[i];
    if (tool.parameters.is_null()) continue;
    if (auto why = schemas.compile(tool.parameters)) {
      std::string name = tool.name.substr(0, kMaxName);
      if (tool.name.size() > kMaxName) name += "...";
      return invalid("tools[" + std::to_string(i) + "] \"" + name +
                     "\": " + std::string(fields.tool_schema) + ": " + *why);
    }
  }
  const chat::ResponseFormat& format = request.response_format;
  if (format.kind == chat::ResponseFormat::Kind::kJsonSchema && !format.schema.is_null()) {
    if (auto why = schemas.compile(format.schema)) {
      return invalid(std::string(fields.response_schema) + ": " + *why);
    }
  }
  return std::nullopt;
}

}  // namespace backstop::validation
