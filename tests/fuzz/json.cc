// Fuzz target: json::parse (its fast reader, and Boost.JSON's basic_parser where the reader
// gives up) against boost::json::parse: the same inputs are accepted, into the same tree;
// and json::serialize against boost::json::serialize.
#include "json/json.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_support.h"

namespace {

// Whether the tree holds a double that is not finite: json::parse rejects those on purpose.
bool has_infinity(const boost::json::value& v) {
  if (v.is_double()) return !std::isfinite(v.get_double());
  if (v.is_array()) {
    for (const auto& e : v.get_array()) {
      if (has_infinity(e)) return true;
    }
  }
  if (v.is_object()) {
    for (const auto& m : v.get_object()) {
      if (has_infinity(m.value())) return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  std::string_view text = fuzz::as_text(data, size);
  boost::system::error_code ec;
  boost::json::value reference = boost::json::parse(text, ec);
  auto ours = backstop::json::parse(text);
  if (ec || has_infinity(reference)) {
    fuzz::require(!ours, "json::parse rejects what Boost.JSON rejects");
    return 0;
  }
  fuzz::require(ours.has_value(), "json::parse accepts what Boost.JSON accepts");
  fuzz::require(boost::json::serialize(*ours) == boost::json::serialize(reference),
                "json::parse gives the tree Boost.JSON gives");
  fuzz::require(backstop::json::serialize(reference) == boost::json::serialize(reference),
                "json::serialize writes what boost::json::serialize writes");
  return 0;
}
