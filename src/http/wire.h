#pragma once

// Reading and writing HTTP/1.1 messages on a stream, shared by the server and the client.
// Private to src/http: it brings Asio and Beast in.

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/system/error_code.hpp>

namespace backstop::http::wire {

constexpr std::size_t kMinRead = 4096;

// Parses what `buffer` holds into `parser`, reading more from `stream` until `done(parser)`.
// The steps and errors of Beast's async_read (end_of_stream, partial_message,
// buffer_overflow, the parser's limits), without its posts through the event loop when the
// buffer already held what was needed.
// `Parser` is a boost::beast::http::basic_parser; `done` is called with it.
template <typename Stream, typename Parser, typename Done>
boost::asio::awaitable<boost::system::error_code> read(Stream& stream,
                                                       boost::beast::flat_buffer& buffer,
                                                       Parser& parser, Done done) {
  namespace http = boost::beast::http;
  boost::system::error_code ec;
  while (!done(parser)) {
    if (buffer.size() != 0) {
      const std::size_t used = parser.put(buffer.data(), ec);
      buffer.consume(used);
      if (!ec) continue;
      if (ec != http::error::need_more) co_return ec;
      ec = {};
    }
    // At least a few KiB at a time (Beast starts at 512 bytes): a typical answer in one recv.
    const std::size_t limit = buffer.max_size() - buffer.size();
    const std::size_t room =
        std::min(limit, std::max<std::size_t>(boost::beast::read_size(buffer, 65536), kMinRead));
    if (room == 0) co_return http::error::buffer_overflow;
    auto [read_ec, n] = co_await stream.async_read_some(
        buffer.prepare(room), boost::asio::as_tuple(boost::asio::use_awaitable));
    buffer.commit(n);
    if (read_ec == boost::asio::error::eof) {
      if (!parser.got_some()) co_return http::error::end_of_stream;
      // A message that ends with the connection (no Content-Length): complete, or partial.
      parser.put_eof(ec);
      if (ec) co_return ec;
      continue;
    }
    if (read_ec) co_return read_ec;
  }
  co_return ec;
}

// Lets the event loop run whatever else is ready before this connection reads the reply to
// what it just sent (the upstream's answer, the client's next request). Under load the bytes
// have arrived by then, and the read takes them at once, where reading at once would find
// the socket empty (a syscall for nothing) and wait for epoll; idle, it costs one trip
// through the loop's queue.
inline boost::asio::awaitable<void> let_others_run() {
  co_await boost::asio::post(co_await boost::asio::this_coro::executor, boost::asio::use_awaitable);
}

// Conditions for read().
inline constexpr auto header_done = [](const auto& parser) { return parser.is_header_done(); };
inline constexpr auto message_done = [](const auto& parser) { return parser.is_done(); };

// Writes `buffers` whole on a socket in non-blocking mode: at once when the kernel takes them
// all (the usual case, and no trip through the event loop), the rest asynchronously.
template <typename Socket, typename Buffers>
boost::asio::awaitable<boost::system::error_code> write(Socket& socket, const Buffers& buffers) {
  boost::system::error_code ec;
  const std::size_t sent = socket.write_some(buffers, ec);
  if (!ec && sent == boost::asio::buffer_size(buffers)) co_return ec;
  if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) {
    co_return ec;
  }
  boost::beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(sent);
  auto [write_ec, n] = co_await boost::asio::async_write(
      socket, rest, boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return write_ec;
}

}  // namespace backstop::http::wire
