#include <string>
#include <string_view>

#include "validation/validator.h"

namespace backstop::validation {
namespace {

constexpr std::size_t kMaxName = 64;  // a tool name quoted in the message

// Where a client writes its schemas, in the words of its own dialect, so that the message
// points at the field the client sent.
struct SchemaFields {
  std::string_view tool_schema;
  std::string_view response_schema;
};

SchemaFields fields_of(chat::Dialect dialect) {
  switch (dialect) {
    case chat::Dialect::kAnthropic:
      return {"input_schema", "output_config.format.schema"};
    case chat::Dialect::kResponses:
      return {"parameters", "text.format.schema"};
    case chat::Dialect::kOpenAI:
      break;
  }
  return {"parameters", "response_format.json_schema.schema"};
}

core::Error invalid(std::string message) {
  return core::Error{core::ErrorCode::kInvalidArgument, std::move(message)};
}

}  // namespace

std::optional<core::Error> check_request_schemas(const chat::ChatRequest& request,
                                                 SchemaCache& schemas) {
  const SchemaFields fields = fields_of(request.origin);
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
