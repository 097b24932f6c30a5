#pragma once
// Which inference stack serves an upstream, from the stack's own endpoints.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "http/client.h"

namespace backstop::providers {

// The endpoints asked, in order: each is specific to one stack, so the first that answers
// with its stack's shape names it.
inline constexpr std::string_view kStackProbePaths[] = {
    "/get_server_info",  // SGLang: {"version": "0.4.6", ...}
    "/info",             // TGI: {"model_id": ..., "version": "3.0.1", ...}
    "/props",            // llama.cpp: {"build_info": "b4567-1a2b3c", ...}
    "/version",          // vLLM: {"version": "0.7.3"}
};

// The label a probe's 200 body says ("sglang-0.4.6", "tgi-3.0.1", "llama.cpp-b4567-1a2b3c",
// "vllm-0.7.3"); empty when the body is not that stack's answer. Labels keep only letters,
// digits and . _ + - and at most 64 characters.
[[nodiscard]] std::string stack_label_of(std::string_view path, std::string_view body);

// The label made safe for a metric label and a ledger column: other characters dropped, at
// most 64 kept.
[[nodiscard]] std::string clean_stack_label(std::string_view label);

// Asks the upstream at `origin` (its host; the base path is not used: the stacks serve these
// at the root) each probe path in turn with GET, each bounded by `timeout`; the first label
// found, or empty when none answers.
[[nodiscard]] boost::asio::awaitable<std::string> probe_stack(http::Client& client,
                                                              http::Origin origin,
                                                              std::chrono::milliseconds timeout);

}  // namespace backstop::providers
