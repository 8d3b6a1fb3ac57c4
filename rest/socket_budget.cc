#include "rest/socket_budget.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace wsstep::rest {

namespace {

// Descriptors open in this process now (/proc/self/fd, less the directory's own).
size_t OpenDescriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  size_t n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n > 0 ? n - 1 : 0;
}

}  // namespace

SocketBudget::SocketBudget(size_t limit)
    : fixed_(limit > 0),
      taken_at_start_(limit > 0 ? 0 : OpenDescriptors()),
      limit_(limit > 0 ? limit : LimitFromProcess(taken_at_start_)) {}

size_t SocketBudget::LimitFromProcess(size_t taken) {
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur == RLIM_INFINITY) {
    return 65536;
  }
  const size_t soft = static_cast<size_t>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  const size_t kept = taken + kReserve + soft / 16;
  return soft > kept + kMinimum ? soft - kept : kMinimum;
}

curl_socket_t SocketBudget::Open(void* context, curlsocktype /*purpose*/, curl_sockaddr* address) {
  auto* open = static_cast<OpenContext*>(context);
  SocketBudget* budget = open->budget;
  if (!budget->fixed_) {
    budget->limit_.store(LimitFromProcess(budget->taken_at_start_), std::memory_order_relaxed);
  }
  const size_t limit = budget->limit();
  size_t now = budget->open_.load(std::memory_order_relaxed);
  do {
    if (now >= limit) {
      open->exhausted = true;
      return CURL_SOCKET_BAD;
    }
  } while (!budget->open_.compare_exchange_weak(now, now + 1, std::memory_order_relaxed));
  const curl_socket_t fd =
      ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd == CURL_SOCKET_BAD) {
    budget->open_.fetch_sub(1, std::memory_order_relaxed);
    if (errno == EMFILE || errno == ENFILE) open->exhausted = true;
  }
  return fd;
}

int SocketBudget::Close(void* budget, curl_socket_t socket) {
  static_cast<SocketBudget*>(budget)->open_.fetch_sub(1, std::memory_order_relaxed);
  return ::close(socket);
}

}  // namespace wsstep::rest
