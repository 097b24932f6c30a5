// Runs every translation case in tests/golden/ (see tests/golden/README.md for the layout).

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "backstop_test_paths.h"
#include "dialects/builtin/builtin.h"
#include "http/sse.h"
#include "json/json.h"

namespace backstop::dialects {
namespace {

namespace bj = boost::json;
namespace fs = std::filesystem;

const fs::path kGoldenDir = fs::path(BACKSTOP_SOURCE_DIR) / "tests" / "golden";

// A string value that matches anything in "expected" (generated ids, timestamps).
constexpr std::string_view kAny = "<any>";

struct GoldenCase {
  std::string kind;  // "request" | "response" | "stream"
  std::string from;  // dialect of the input: openai, anthropic, responses (clients only)
  std::string to;    // dialect of the output
  fs::path file;
  std::string name;  // "request/openai-to-anthropic/plain"
};

std::vector<GoldenCase> find_cases() {
  std::vector<GoldenCase> cases;
  for (std::string kind : {"request", "response", "stream"}) {
    fs::path root = kGoldenDir / kind;
    if (!fs::is_directory(root)) continue;
    for (const auto& dir : fs::directory_iterator(root)) {
      std::string pair = dir.path().filename().string();
      auto sep = pair.find("-to-");
      if (!dir.is_directory() || sep == std::string::npos) continue;
      for (const auto& file : fs::directory_iterator(dir.path())) {
        if (file.path().extension() != ".json") continue;
        cases.push_back({kind, pair.substr(0, sep), pair.substr(sep + 4), file.path(),
                         kind + "/" + pair + "/" + file.path().stem().string()});
      }
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const GoldenCase& a, const GoldenCase& b) { return a.name < b.name; });
  return cases;
}

// Differences between expected and actual, one line each with its JSON path.
void compare(const bj::value& expected, const bj::value& actual, const std::string& path,
             std::vector<std::string>& diffs) {
  if (expected.is_string() && expected.get_string() == kAny) return;
  if (expected.is_object() && actual.is_object()) {
    const auto& e = expected.get_object();
    const auto& a = actual.get_object();
    for (const auto& field : e) {
      std::string key_path = path + "." + std::string(field.key());
      auto it = a.find(field.key());
      if (it == a.end()) {
        diffs.push_back(key_path + ": missing");
      } else {
        compare(field.value(), it->value(), key_path, diffs);
      }
    }
    for (const auto& field : a) {
      if (!e.contains(field.key()))
        diffs.push_back(path + "." + std::string(field.key()) + ": unexpected");
    }
    return;
  }
  if (expected.is_array() && actual.is_array()) {
    const auto& e = expected.get_array();
    const auto& a = actual.get_array();
    if (e.size() != a.size()) {
      diffs.push_back(path + ": " + std::to_string(a.size()) + " elements, expected " +
                      std::to_string(e.size()));
      return;
    }
    for (std::size_t i = 0; i < e.size(); ++i) {
      compare(e[i], a[i], path + "[" + std::to_string(i) + "]", diffs);
    }
    return;
  }
  // Numbers compare by value, so 1 and 1.0 are the same number.
  bool numbers = expected.is_number() && actual.is_number();
  if (numbers ? expected.to_number<double>() != actual.to_number<double>() : expected != actual) {
    diffs.push_back(path + ": " + bj::serialize(actual) + ", expected " + bj::serialize(expected));
  }
}

const Dialect& dialect(std::string_view name) {
  const Dialect* d = builtin().find(name);
  EXPECT_NE(d, nullptr) << "no dialect " << name;
  return d != nullptr ? *d : builtin().fallback();
}

core::Result<std::string> translate_request(const GoldenCase& c, const bj::object& spec) {
  std::string input = bj::serialize(spec.at("input"));
  auto decoded = dialect(c.from).decode_request(input);
  if (!decoded) return std::unexpected(decoded.error());
  std::string model = "upstream-model";
  if (auto it = spec.find("model"); it != spec.end()) model = std::string(it->value().as_string());
  std::int64_t default_max_tokens = 4096;
  if (auto it = spec.find("default_max_tokens"); it != spec.end()) {
    default_max_tokens = it->value().to_number<std::int64_t>();
  }
  return dialect(c.to).encode_request(*decoded, model,
                                      UpstreamSettings{{}, {}, default_max_tokens});
}

core::Result<std::string> translate_response(const GoldenCase& c, const bj::object& spec) {
  std::string input = bj::serialize(spec.at("input"));
  auto decoded = dialect(c.from).decode_response(input);
  if (!decoded) return std::unexpected(decoded.error());
  std::string model;
  if (auto it = spec.find("model"); it != spec.end()) model = std::string(it->value().as_string());
  // The Responses API always names a model; the others echo the given one, even empty.
  if (model.empty() && c.to == "responses") model = decoded->model;
  return dialect(c.to).encode_response(*decoded, chat::ChatRequest{}, model);
}

// The upstream's stream as SSE text: `input` is that text, or a list of {"event"?, "data"}
// objects whose data is a string or JSON.
std::string upstream_stream(const bj::value& input) {
  if (input.is_string()) return std::string(input.get_string());
  std::string out;
  for (const auto& item : input.as_array()) {
    const auto& frame = item.as_object();
    std::string event;
    if (auto it = frame.find("event"); it != frame.end()) event = it->value().as_string();
    const auto& data = frame.at("data");
    out += http::sse_frame(event,
                           data.is_string() ? std::string(data.get_string()) : bj::serialize(data));
  }
  return out;
}

// The client's stream as the list that `expected` gives: {"event"?, "data"} per frame, the
// data parsed when it is JSON.
core::Result<std::string> client_frames(std::string_view stream) {
  http::SseParser parser;
  std::vector<http::SseEvent> events;
  parser.feed(stream, events);
  if (parser.pending() != 0) {
    return core::fail(core::ErrorCode::kInternal, "the stream ends inside a frame");
  }
  bj::array frames;
  for (const auto& event : events) {
    bj::object frame;
    if (!event.event.empty()) frame["event"] = event.event;
    auto data = json::parse(event.data);
    frame["data"] = data ? *data : bj::value(bj::string(event.data));
    frames.push_back(std::move(frame));
  }
  return bj::serialize(frames);
}

// Decodes the upstream's stream in its dialect and encodes the events for the client; an
// error in the stream ends it with the client dialect's error frame, as the gateway does.
core::Result<std::string> translate_stream(const GoldenCase& c, const bj::object& spec) {
  std::string model;
  if (auto it = spec.find("model"); it != spec.end()) model = std::string(it->value().as_string());
  bool include_usage = true;
  if (auto it = spec.find("include_usage"); it != spec.end()) include_usage = it->value().as_bool();

  http::SseParser parser;
  std::vector<http::SseEvent> upstream;
  parser.feed(upstream_stream(spec.at("input")), upstream);

  const auto reader = dialect(c.from).stream_reader();
  if (reader == nullptr) return core::fail(core::ErrorCode::kInternal, c.from + " reads no stream");
  chat::ChatRequest request;
  request.include_usage = include_usage;
  const auto writer = dialect(c.to).stream_writer(request, model);
  std::string out;
  for (const auto& frame : upstream) {
    std::vector<chat::StreamEvent> events;
    auto ok = reader->feed(frame.event, frame.data, events);
    for (const auto& event : events) out += writer->encode(event);
    if (!ok) {
      out += writer->error(ok.error());
      return client_frames(out);
    }
  }
  out += writer->finish();
  return client_frames(out);
}

class GoldenTest : public testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, TranslatesAsExpected) {
  const GoldenCase& c = GetParam();
  std::ifstream in(c.file);
  std::stringstream text;
  text << in.rdbuf();
  auto spec = json::parse_object(text.str());
  ASSERT_TRUE(spec) << c.name << ": " << spec.error().message;
  ASSERT_TRUE(spec->contains("input") && spec->contains("expected"))
      << c.name << ": a case needs \"input\" and \"expected\"";

  auto out = c.kind == "request"    ? translate_request(c, *spec)
             : c.kind == "response" ? translate_response(c, *spec)
                                    : translate_stream(c, *spec);
  ASSERT_TRUE(out) << c.name << ": " << out.error().message;
  auto actual = json::parse(*out);
  ASSERT_TRUE(actual) << c.name << ": output is not JSON: " << *out;

  std::vector<std::string> diffs;
  compare(spec->at("expected"), *actual, "$", diffs);
  std::string report;
  for (const auto& diff : diffs) report += "  " + diff + "\n";
  EXPECT_TRUE(diffs.empty()) << c.name << "\n"
                             << report << "expected: " << bj::serialize(spec->at("expected"))
                             << "\nactual:   " << *out;
}

std::string case_name(const testing::TestParamInfo<GoldenCase>& info) {
  std::string name = info.param.name;
  std::replace_if(
      name.begin(), name.end(),
      [](char ch) { return !std::isalnum(static_cast<unsigned char>(ch)); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenTest, testing::ValuesIn(find_cases()), case_name);

// The categories every pair of dialects must have a case for, per kind (tests/golden/README.md
// has the table). A category is covered by `<category>.json` or `<category>-<detail>.json`.
struct RequiredCases {
  std::string_view kind;
  std::vector<std::string_view> categories;
};

const std::vector<RequiredCases>& required_cases() {
  static const std::vector<RequiredCases> kRequired = {
      {"request",
       {"plain", "system", "multi-turn", "tools", "parallel-tool-calls", "tool-results",
        "tool-choice-auto", "tool-choice-none", "tool-choice-required", "tool-choice-named",
        "stop-sequences", "stream"}},
      {"response", {"text", "tool-calls", "parallel-tool-calls", "cache-usage"}},
      {"stream", {"text", "parallel-tool-calls", "error"}},
  };
  return kRequired;
}

// True when the case file `stem` covers `category`.
bool covers(std::string_view stem, std::string_view category) {
  return stem == category || (stem.starts_with(category) && stem.size() > category.size() &&
                              stem[category.size()] == '-');
}

TEST(GoldenCasesTest, CategoryIsCoveredByItsNameOrANameWithADetail) {
  EXPECT_TRUE(covers("system", "system"));
  EXPECT_TRUE(covers("system-string", "system"));
  EXPECT_FALSE(covers("systems", "system"));
  EXPECT_FALSE(covers("tool-results", "tools"));
  EXPECT_FALSE(covers("overloaded-error", "error"));
}

// The pairs a kind of case is written for: every pair of the registered dialects (each one
// both a client's and an upstream's).
std::vector<std::pair<std::string_view, std::string_view>> pairs_of(std::string_view) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const Dialect* from : builtin().all()) {
    for (const Dialect* to : builtin().all()) out.emplace_back(from->name(), to->name());
  }
  return out;
}

TEST(GoldenCasesTest, EveryPairHasEveryCategory) {
  auto cases = find_cases();
  for (const auto& [kind, categories] : required_cases()) {
    for (auto [from, to] : pairs_of(kind)) {
      {
        std::string dir = std::string(kind) + "/" + std::string(from) + "-to-" + std::string(to);
        for (std::string_view category : categories) {
          // The Responses API has no stop sequences.
          if (from == "responses" && category == "stop-sequences") continue;
          bool found = std::any_of(cases.begin(), cases.end(), [&](const GoldenCase& c) {
            return c.kind == kind && c.from == from && c.to == to &&
                   covers(c.file.stem().string(), category);
          });
          EXPECT_TRUE(found) << "no `" << category << "` case in tests/golden/" << dir << " ("
                             << category << ".json or " << category << "-*.json)";
        }
      }
    }
  }
}

}  // namespace
}  // namespace backstop::dialects
