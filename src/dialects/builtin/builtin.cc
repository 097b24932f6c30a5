#include "dialects/builtin/builtin.h"

#include "dialects/anthropic/dialect.h"
#include "dialects/openai/dialect.h"
#include "dialects/responses/dialect.h"

namespace backstop::dialects {

const Registry& builtin() {
  static const Registry registry = [] {
    Registry r;
    r.add(openai::dialect());
    r.add(anthropic::dialect());
    r.add(responses::dialect());
    return r;
  }();
  return registry;
}

}  // namespace backstop::dialects
