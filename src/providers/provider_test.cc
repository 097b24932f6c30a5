// A provider's inference-stack label: configured, detected, and the answers' fingerprint.
#include "providers/provider.h"

#include <gtest/gtest.h>

#include "providers/simulated_provider.h"

namespace backstop::providers {
namespace {

SimulatedOptions options() {
  SimulatedOptions o;
  o.name = "p";
  o.model = "m";
  return o;
}

TEST(ProviderStack, AFingerprintAloneIsTheLabelAndANewOneReplacesIt) {
  SimulatedProvider p(options());
  EXPECT_EQ(p.stack(), "");
  p.observe_fingerprint("");
  EXPECT_EQ(p.stack(), "");
  p.observe_fingerprint("fp_44709d6fcb");
  EXPECT_EQ(p.stack(), "fp_44709d6fcb");
  p.observe_fingerprint("fp_44709d6fcb");
  EXPECT_EQ(p.stack(), "fp_44709d6fcb");
  p.observe_fingerprint("");  // an answer without one changes nothing
  EXPECT_EQ(p.stack(), "fp_44709d6fcb");
  p.observe_fingerprint("fp_8802369eaa");
  EXPECT_EQ(p.stack(), "fp_8802369eaa");
}

TEST(ProviderStack, ADetectedStackIsJoinedToTheFingerprint) {
  SimulatedProvider p(options());
  p.observe_fingerprint("fp_a");
  p.set_stack("vllm-0.7.3");
  EXPECT_EQ(p.stack(), "vllm-0.7.3+fp_a");
  p.observe_fingerprint("fp_b");
  EXPECT_EQ(p.stack(), "vllm-0.7.3+fp_b");
  p.set_stack("vllm-0.8.0");
  EXPECT_EQ(p.stack(), "vllm-0.8.0+fp_b");
}

TEST(ProviderStack, AFingerprintIsCleanedLikeAStackLabel) {
  SimulatedProvider p(options());
  p.observe_fingerprint("fp 1\"}{x" + std::string(100, 'a'));
  EXPECT_EQ(p.stack(), "fp1x" + std::string(60, 'a'));
}

TEST(ProviderStack, APinnedStackIgnoresDetectionAndFingerprints) {
  SimulatedProvider p(options());
  p.pin_stack("sglang-0.4.6");
  p.observe_fingerprint("fp_a");
  p.set_stack("vllm-0.7.3");
  EXPECT_EQ(p.stack(), "sglang-0.4.6");
}

}  // namespace
}  // namespace backstop::providers
