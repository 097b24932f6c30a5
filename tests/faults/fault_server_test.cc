// The fault server does what its script says, byte for byte, seen by a raw socket client.
#include "fault_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace backstop::faults {
namespace {

// A blocking loopback client: one connection, raw bytes.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }
  ~RawClient() { ::close(fd_); }

  void post(std::string_view target, std::string_view body, std::string_view request_id = "r") {
    std::string request =
        "POST " + std::string(target) +
        " HTTP/1.1\r\nhost: x\r\nx-request-id: " + std::string(request_id) +
        "\r\ncontent-type: application/json\r\ncontent-length: " + std::to_string(body.size()) +
        "\r\n\r\n" + std::string(body);
    ASSERT_EQ(::send(fd_, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
  }

  // What arrives until the peer closes, resets, or `quiet` passes without a byte.
  struct Read {
    std::string bytes;
    bool closed = false;  // an orderly close
    bool reset = false;   // ECONNRESET
  };
  Read read(Ms quiet = Ms(300)) {
    Read out;
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) == 0) return out;
      char data[4096];
      const ssize_t n = ::recv(fd_, data, sizeof data, 0);
      if (n == 0) {
        out.closed = true;
        return out;
      }
      if (n < 0) {
        out.reset = errno == ECONNRESET;
        return out;
      }
      out.bytes.append(data, static_cast<std::size_t>(n));
      if (whole(out.bytes)) return out;
    }
  }

 private:
  // Whether `bytes` hold one whole response (by content-length, or the last chunk).
  static bool whole(const std::string& bytes) {
    const std::size_t end = bytes.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const std::size_t length = bytes.find("content-length: ");
    if (length != std::string::npos && length < end) {
      return bytes.size() >= end + 4 + std::stoul(bytes.substr(length + 16));
    }
    return bytes.ends_with("\r\n0\r\n\r\n");
  }

  int fd_ = -1;
};

constexpr std::string_view kOpenAIStream =
    R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";

TEST(FaultServerTest, RecordsEachRequestWithItsArrivalTime) {
  FaultServer server;
  RawClient client(server.port());
  client.post("/v1/chat/completions", R"({"model":"m","messages":[]})", "a");
  EXPECT_NE(client.read().bytes.find("\"model\":\"m\""), std::string::npos);
  client.post("/v1/chat/completions", R"({"model":"m","messages":[]})", "a");  // kept alive
  client.read();
  ASSERT_TRUE(server.wait_for(2));
  const auto received = server.received();
  EXPECT_EQ(received[0].target, "/v1/chat/completions");
  EXPECT_EQ(received[0].header("x-request-id"), "a");
  EXPECT_EQ(received[0].model(), "m");
  EXPECT_LE(received[0].arrived, received[1].arrived);
  EXPECT_EQ(server.spacing("a").size(), 1u);
}

TEST(FaultServerTest, ScriptedRepliesComeInOrderThenTheDefault) {
  FaultServer server;
  server.script({Behaviour::reply(429, "{}", {{"retry-after", "1"}})});
  server.otherwise(Behaviour::reply(503, "{}"));
  RawClient client(server.port());
  client.post("/v1/chat/completions", "{}");
  const std::string first = client.read().bytes;
  EXPECT_TRUE(first.starts_with("HTTP/1.1 429 ")) << first;
  EXPECT_NE(first.find("retry-after: 1\r\n"), std::string::npos);
  client.post("/v1/chat/completions", "{}");
  EXPECT_TRUE(client.read().bytes.starts_with("HTTP/1.1 503 "));
}

TEST(FaultServerTest, AnswersEachDialectWholeAndStreamed) {
  FaultServer server;
  RawClient client(server.port());
  client.post("/v1/messages", R"({"model":"c","max_tokens":5,"messages":[]})");
  EXPECT_NE(client.read().bytes.find("\"type\":\"message\""), std::string::npos);
  client.post("/v1/messages", R"({"model":"c","stream":true,"messages":[]})");
  const std::string anthropic = client.read().bytes;
  EXPECT_NE(anthropic.find("event: message_stop"), std::string::npos);
  EXPECT_TRUE(anthropic.ends_with("0\r\n\r\n"));
  client.post("/v1/chat/completions", kOpenAIStream);
  const std::string openai = client.read().bytes;
  EXPECT_NE(openai.find("transfer-encoding: chunked"), std::string::npos);
  EXPECT_NE(openai.find("\"finish_reason\":\"stop\""), std::string::npos);
  EXPECT_NE(openai.find("data: [DONE]"), std::string::npos);
}

TEST(FaultServerTest, StreamWithoutDoneEndsCleanlyAfterTheFinishReason) {
  FaultServer server;
  Behaviour b = Behaviour::ok();
  b.omit_done = true;
  server.script({b});
  RawClient client(server.port());
  client.post("/v1/chat/completions", kOpenAIStream);
  const std::string bytes = client.read().bytes;
  EXPECT_NE(bytes.find("\"finish_reason\":\"stop\""), std::string::npos);
  EXPECT_EQ(bytes.find("[DONE]"), std::string::npos);
  EXPECT_TRUE(bytes.ends_with("0\r\n\r\n"));
}

TEST(FaultServerTest, MalformedEventGoesWhereTheScriptSays) {
  FaultServer server;
  Behaviour b = Behaviour::ok();
  b.malformed_at = 1;
  server.script({b});
  RawClient client(server.port());
  client.post("/v1/chat/completions", kOpenAIStream);
  const auto data = sse_data(client.read().bytes);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data[1], R"({"id":"chatcmpl-fault","choices":[{"index":0,"delta":{"con)");
}

TEST(FaultServerTest, CutClosesMidBodyAndStallKeepsItOpen) {
  FaultServer server;
  Behaviour cut = Behaviour::ok();
  cut.stop_after_events = 2;
  cut.end = StreamEnd::kCut;
  Behaviour stall = cut;
  stall.end = StreamEnd::kStall;
  server.script({cut, stall});
  {
    RawClient client(server.port());
    client.post("/v1/chat/completions", kOpenAIStream);
    auto read = client.read();
    EXPECT_TRUE(read.closed);
    EXPECT_EQ(sse_data(read.bytes).size(), 2u);
    EXPECT_FALSE(read.bytes.ends_with("0\r\n\r\n"));
  }
  RawClient client(server.port());
  client.post("/v1/chat/completions", kOpenAIStream);
  auto read = client.read(Ms(500));
  EXPECT_FALSE(read.closed);
  EXPECT_FALSE(read.reset);
  EXPECT_EQ(sse_data(read.bytes).size(), 2u);
}

TEST(FaultServerTest, ResetAndSilence) {
  FaultServer server;
  server.script({Behaviour::reset(), Behaviour::silent()});
  {
    RawClient client(server.port());
    client.post("/v1/chat/completions", "{}");
    auto read = client.read();
    EXPECT_TRUE(read.reset);
    EXPECT_TRUE(read.bytes.empty());
  }
  RawClient client(server.port());
  client.post("/v1/chat/completions", "{}");
  auto read = client.read(Ms(500));
  EXPECT_TRUE(read.bytes.empty());
  EXPECT_FALSE(read.closed);
  EXPECT_EQ(server.count(), 2u);
}

TEST(FaultServerTest, DelaysComeBeforeTheHeadersAndBeforeTheFirstEvent) {
  FaultServer server;
  Behaviour slow = Behaviour::ok();
  slow.first_event_delay = Ms(400);
  server.script({Behaviour::ok().after(Ms(400)), slow});
  RawClient client(server.port());
  client.post("/v1/chat/completions", kOpenAIStream);
  EXPECT_TRUE(client.read(Ms(100)).bytes.empty());  // nothing yet, not even the status line
  EXPECT_NE(client.read(Ms(1000)).bytes.find("[DONE]"), std::string::npos);
  client.post("/v1/chat/completions", kOpenAIStream);
  const std::string headers_only = client.read(Ms(100)).bytes;
  EXPECT_TRUE(headers_only.starts_with("HTTP/1.1 200 ")) << headers_only;
  EXPECT_TRUE(sse_data(headers_only).empty());
  EXPECT_NE(client.read(Ms(1000)).bytes.find("[DONE]"), std::string::npos);
}

TEST(FaultServerTest, PerEventDelaysPauseTheStreamWhereTheyAreGiven) {
  FaultServer server;
  Behaviour b = Behaviour::ok();
  b.delays = {Ms(0), Ms(0), Ms(400)};  // the third event comes late
  server.script({b});
  RawClient client(server.port());
  client.post("/v1/chat/completions", kOpenAIStream);
  EXPECT_EQ(sse_data(client.read(Ms(200)).bytes).size(), 2u);
  EXPECT_NE(client.read(Ms(1000)).bytes.find("[DONE]"), std::string::npos);
}

}  // namespace
}  // namespace backstop::faults
