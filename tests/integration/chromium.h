#pragma once
// Headless Chromium for the page tests: a page is written to a file, loaded, and its DOM
// after scripts ran is read back.

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace backstop::testing {

// The first of Debian's and other distributions' names for the browser on PATH; empty: none.
inline std::string chromium_path() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin";
    for (std::size_t start = 0; start <= dirs.size();) {
      std::size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      const std::filesystem::path candidate =
          std::filesystem::path(dirs.substr(start, end - start)) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
      start = end + 1;
    }
  }
  return {};
}

// The standard output of a shell command.
inline std::string run_command(const std::string& command) {
  std::string out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) return out;
  std::array<char, 4096> buffer;
  while (std::size_t n = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) {
    out.append(buffer.data(), n);
  }
  return out;
}

// Collects, before the page's own content loads, every script error, failed load and
// console.error or console.warn into window.pageErrors.
inline constexpr const char* kErrorCapture = R"(<script>
window.pageErrors = [];
addEventListener('error', (e) => pageErrors.push(e.message ||
    ('failed to load ' + (e.target && (e.target.src || e.target.href)))), true);
for (const level of ['error', 'warn']) {
  const original = console[level];
  console[level] = (...args) => { pageErrors.push(args.join(' ')); original(...args); };
}
</script>)";

// `html` with kErrorCapture first in its head and `measure` (a script that writes what it
// found into the body) last in its body; empty when the page has no head or body.
inline std::string with_probes(std::string html, const std::string& measure) {
  const std::size_t end = html.rfind("</body>");
  const std::size_t head = html.find("<head>");
  if (end == std::string::npos || head == std::string::npos) return {};
  html.insert(end, measure);
  html.insert(head + 6, kErrorCapture);
  return html;
}

// The DOM `chromium` makes of `html` (loaded from a file in a fresh directory named after
// `name`, removed afterwards), serialized after the page's scripts ran.
inline std::string dump_dom(const std::string& chromium, const std::string& html,
                            const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("backstop_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto page = dir / "page.html";
  std::ofstream(page) << html;
  const std::string dom = run_command("'" + chromium +
                                      "' --headless --no-sandbox --disable-gpu --no-first-run "
                                      "--user-data-dir='" +
                                      (dir / "profile").string() + "' --dump-dom 'file://" +
                                      page.string() + "' 2>/dev/null");
  std::filesystem::remove_all(dir);
  return dom;
}

}  // namespace backstop::testing
