#pragma once

#include <memory>

#include "config/config.h"
#include "core/error.h"
#include "dialects/registry.h"
#include "providers/provider.h"
#include "server/gateway.h"  // EnvReader

namespace backstop::server {

// The provider a config entry describes: simulated, or HTTP in its dialect with the key read
// from api_key_env, in the dialect its kind names in `dialects`. kInvalidArgument when that
// variable is unset or the base_url is bad.
[[nodiscard]] core::Result<std::unique_ptr<providers::Provider>> build_provider(
    const config::Provider& p, const dialects::Registry& dialects, const EnvReader& env);

}  // namespace backstop::server
