// Fuzz target: config::parse on YAML text. It must report problems as errors, never throw.
#include "config/config.h"

#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fuzz = backstop::fuzz;
  namespace config = backstop::config;

  config::LoadResult result = config::parse(fuzz::as_text(data, size), "fuzz.yaml");
  fuzz::require((result.config == nullptr) == !result.errors.empty(),
                "a config is returned exactly when there are no errors");
  for (const auto& error : result.errors) {
    fuzz::require(!error.message.empty(), "every config error has a message");
    fuzz::require(error.to_string().starts_with("fuzz.yaml:"), "a config error names the file");
  }
  if (result.config == nullptr) return 0;
  for (const auto& workload : result.config->workloads) {
    fuzz::require(result.config->find_workload(workload.name) != nullptr,
                  "every workload can be found by its name");
    for (const auto& target : workload.route) {
      fuzz::require(result.config->find_provider(target) != nullptr,
                    "every route names a defined provider");
    }
  }
  return 0;
}
