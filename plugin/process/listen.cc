#include "plugin/process/listen.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>

namespace wsstep::plugin {
namespace {

Error BadAddress(std::string_view text, std::string_view why) {
  return Error(Code::kInvalidArgument,
               "listen address '" + std::string(text) + "': " + std::string(why),
               "use unix:///absolute/path.sock or 127.0.0.1:PORT", Side::kConfiguration);
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string ListenAddress::GrpcUri() const {
  if (kind == Kind::kUnix) return "unix://" + path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string ListenAddress::Display() const {
  if (kind == Kind::kUnix) return "unix://" + path;
  return "tcp://" + GrpcUri();
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress a;
  std::string_view rest = text;
  if (rest.empty()) return BadAddress(text, "empty");
  if (rest.starts_with("unix:") || rest.starts_with("/")) {
    a.kind = ListenAddress::Kind::kUnix;
    if (rest.starts_with("unix://")) {
      rest.remove_prefix(7);
    } else if (rest.starts_with("unix:")) {
      rest.remove_prefix(5);
    }
    if (rest.empty()) return BadAddress(text, "no socket path");
    std::string path(rest);
    if (path.front() != '/') {
      char cwd[PATH_MAX];
      if (::getcwd(cwd, sizeof cwd) == nullptr) return BadAddress(text, "cannot resolve relative path");
      path = std::string(cwd) + "/" + path;
    }
    // sun_path holds 108 bytes including the terminator.
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return BadAddress(text, "socket path longer than " +
                                  std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
    }
    a.path = std::move(path);
    return a;
  }
  a.kind = ListenAddress::Kind::kTcp;
  if (rest.starts_with("tcp://")) rest.remove_prefix(6);
  std::string_view host, port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return BadAddress(text, "expected [ipv6]:port");
    }
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return BadAddress(text, "expected host:port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return BadAddress(text, "write IPv6 addresses in brackets: [::1]:PORT");
    }
  }
  if (host.empty()) return BadAddress(text, "no host");
  int p = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 0 ||
      p > 65535) {
    return BadAddress(text, "port '" + std::string(port) + "' is not 0-65535");
  }
  a.host = std::string(host);
  a.port = p;
  return a;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  in_addr v4{};
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

Result<ListenAddress> ParseMetricsAddress(std::string_view text) {
  auto address = ParseListenAddress(text);
  if (!address.ok()) {
    return Error(Code::kInvalidArgument, "metrics_listen: " + address.error().message,
                 address.error().hint, Side::kConfiguration);
  }
  if (address->kind != ListenAddress::Kind::kTcp) {
    return Error(Code::kInvalidArgument,
                 "metrics_listen: '" + std::string(text) +
                     "' is not host:port (Prometheus scrapes over TCP), e.g. 127.0.0.1:9464",
                 "", Side::kConfiguration);
  }
  return address;
}

Status CheckListenPolicy(const ListenAddress& address, bool allow_remote) {
  if (address.kind == ListenAddress::Kind::kTcp && !IsLoopbackHost(address.host) &&
      !allow_remote) {
    return Error(Code::kInvalidArgument,
                 "listen address " + address.Display() + " is not a loopback address",
                 "the plugin API is unauthenticated outside AutoMTLS: listen on a unix socket "
                 "or 127.0.0.1, or pass --allow-remote if a firewall or proxy protects it",
                 Side::kConfiguration);
  }
  return {};
}

Status PrepareUnixSocketPath(const std::string& path) {
  const std::string dir = DirOf(path);
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return Error(Code::kInvalidArgument, dir + ": " + std::strerror(errno),
                   "check the socket directory", Side::kConfiguration);
    }
    // Create missing parents with 0700 (the last component matters; parents made here
    // are ours too).
    std::string partial;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = dir.find('/', pos + 1);
      partial = dir.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
        return Error(Code::kInvalidArgument,
                     partial + ": cannot create the socket directory: " + std::strerror(errno),
                     "create it, or choose another --listen path", Side::kConfiguration);
      }
    }
  } else {
    if (!S_ISDIR(st.st_mode)) {
      return Error(Code::kInvalidArgument, dir + ": not a directory",
                   "choose another --listen path", Side::kConfiguration);
    }
    const bool others_can_write = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
    const bool sticky = (st.st_mode & S_ISVTX) != 0;
    if (st.st_uid != ::geteuid() && st.st_uid != 0) {
      return Error(Code::kInvalidArgument,
                   dir + ": the socket directory belongs to another user",
                   "choose a directory you own for --listen", Side::kConfiguration);
    }
    if (others_can_write && !sticky) {
      // Another user could replace our socket with theirs.
      return Error(Code::kInvalidArgument,
                   dir + ": the socket directory is writable by other users",
                   "chmod go-w it, or choose a private directory for --listen",
                   Side::kConfiguration);
    }
  }
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error(Code::kInvalidArgument, path + ": exists and is not a socket",
                   "remove it or choose another --listen path", Side::kConfiguration);
    }
    // A socket left behind by a crashed run. If another server still listens on it,
    // binding fails later with "address in use" only on some systems; gRPC unlinks
    // before bind anyway, so removing it here changes nothing for a live server but
    // makes the error explicit for a dead one.
    ::unlink(path.c_str());
  }
  return {};
}

namespace {

// Where private socket directories go: `base`, else $TMPDIR, else /tmp.
std::string SocketRoot(const std::string& base) {
  if (!base.empty()) return base;
  const char* t = std::getenv("TMPDIR");
  return (t != nullptr && *t != '\0') ? t : "/tmp";
}

}  // namespace

Result<std::string> MakePrivateTempDir(const std::string& base) {
  const std::string root = SocketRoot(base);
  std::string templ = root + "/wsstep-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {  // mkdtemp creates it 0700
    return Error(Code::kInvalidArgument,
                 root + ": cannot create a private socket directory: " + std::strerror(errno),
                 "set TMPDIR (or PLUGIN_UNIX_SOCKET_DIR) to a writable directory",
                 Side::kConfiguration);
  }
  return templ;
}

namespace {

// "wsstep-" and the six characters mkdtemp chose: only what MakePrivateTempDir makes.
bool IsPrivateSocketDirName(std::string_view name) {
  constexpr std::string_view kPrefix = "wsstep-";
  if (name.size() != kPrefix.size() + 6 || !name.starts_with(kPrefix)) return false;
  for (char c : name.substr(kPrefix.size())) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Modified in the last kStaleAfter (or in the future): possibly a plugin starting now.
bool ChangedRecently(const struct stat& st, time_t now) {
  return now - st.st_mtime < static_cast<time_t>(kStaleAfter.count());
}

// Whether a unix socket file has nobody listening on it: connect() is refused.
bool NobodyListens(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return false;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  ::close(fd);
  return r != 0 && err == ECONNREFUSED;
}

// The sockets of a stale directory, or nullopt when anything in it says otherwise.
std::optional<std::vector<std::string>> StaleSockets(const std::string& dir, time_t now) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return std::nullopt;
  std::vector<std::string> sockets;
  bool stale = true;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + std::string(name);
    struct stat st{};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || ChangedRecently(st, now) ||
        !NobodyListens(path)) {
      stale = false;
      break;
    }
    sockets.push_back(path);
  }
  ::closedir(d);
  if (!stale) return std::nullopt;
  return sockets;
}

}  // namespace

std::vector<std::string> SweepStaleSocketDirs(const std::string& base) {
  const std::string root = SocketRoot(base);
  std::vector<std::string> removed;
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) return removed;
  std::vector<std::string> candidates;
  while (const dirent* e = ::readdir(d)) {
    if (IsPrivateSocketDirName(e->d_name)) candidates.push_back(root + "/" + e->d_name);
  }
  ::closedir(d);
  const time_t now = std::time(nullptr);
  for (const std::string& dir : candidates) {
    struct stat st{};
    // Ours only, a real directory (never a symlink), untouched for a while.
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() ||
        ChangedRecently(st, now)) {
      continue;
    }
    auto sockets = StaleSockets(dir, now);
    if (!sockets) continue;
    for (const std::string& s : *sockets) ::unlink(s.c_str());
    if (::rmdir(dir.c_str()) == 0) removed.push_back(dir);
  }
  return removed;
}

void RemoveUnixSocket(const std::string& path, bool remove_dir) {
  ::unlink(path.c_str());
  if (remove_dir) ::rmdir(DirOf(path).c_str());
}

}  // namespace wsstep::plugin
