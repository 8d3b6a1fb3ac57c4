// Errors as values. Every fallible wsstep function returns Result<T> or Status, carrying
// a stable catalog code (PRODUCT.md §1 import codes, §2 error catalog) with a message
// that names the input, a hint saying what to do, which side failed, and named details
// (alert name, SANs, expiry...). One place in plugin/ maps these to gRPC and step outcomes.
#ifndef WSSTEP_CORE_ERROR_H_
#define WSSTEP_CORE_ERROR_H_

#include <cassert>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace wsstep {

enum class Code {
  kOk = 0,
  // Import validation (§1).
  kInvalidCertificateFormat,
  kPasswordRequired,
  kWrongPassword,
  kPrivateKeyMissing,
  kKeyCertMismatch,
  kCertificateExpired,  // also a call-time resolution outcome (§2)
  kUnsupportedAlgorithm,
  kDuplicateName,
  kChainIncomplete,  // a warning at import, never a failure
  // Call-time catalog (§2).
  kCertificateNotFound,
  kCertificateNotYetValid,
  kClientCertRejected,
  kClientCertRequired,
  kServerCertUntrusted,
  kServerCertExpired,
  kHostnameMismatch,
  kPinMismatch,
  kTlsHandshakeFailed,
  kConnectionRefused,
  kDnsFailure,
  kTimeout,
  kResponseTooLarge,
  kInvalidStepConfig,
  // SOAP outcomes (§3).
  kSoapFault,
  kInvalidResponse,
  kSigningFailed,  // the WS-Security signature could not be made with the bound key
  kInvalidWsdl,    // a WSDL (or a schema it imports) cannot be read; names file and element
  // Contract and infrastructure.
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kCancelled,
  kStorageError,
  kStorageUnavailable,  // a shared store's database cannot be reached now (retryable)
  kMasterKeyError,
  kTransferFailed,
  kInternal,
  // Engine capacity (issue 20): the plugin's own limits, never the origin's fault.
  kDescriptorsExhausted,  // the plugin ran out of file descriptors (side PLUGIN)
  kOriginBusy,            // the per-origin concurrency cap is full, and so is its queue
  // Proxies (issue 18), side PROXY.
  kProxyUnreachable,   // the proxy's name does not resolve, or it refuses the connection
  kProxyAuthRequired,  // the proxy answered CONNECT with 407
  kProxyRefused,       // the proxy answered CONNECT with another non-2xx status
};

// The stable catalog name, e.g. "CLIENT_CERT_REJECTED".
std::string_view CodeName(Code code);
// Inverse of CodeName; kInternal for an unknown name.
Code CodeFromName(std::string_view name);

// Which party a failure belongs to, so a designer knows where to look.
enum class Side { kNone, kConfiguration, kClient, kServer, kNetwork, kStore, kPlugin, kProxy };
std::string_view SideName(Side side);

struct Error {
  Code code = Code::kInternal;
  std::string message;  // one sentence naming the input, e.g. "client.p12: wrong password"
  std::string hint;     // what to do about it
  Side side = Side::kNone;
  std::map<std::string, std::string> detail;  // named facts: "alert", "sans", "not_after", ...

  Error() = default;
  Error(Code c, std::string msg, std::string h = {}, Side s = Side::kNone)
      : code(c), message(std::move(msg)), hint(std::move(h)), side(s) {}
  Error& With(std::string key, std::string value) & {
    detail[std::move(key)] = std::move(value);
    return *this;
  }
  Error&& With(std::string key, std::string value) && {
    detail[std::move(key)] = std::move(value);
    return std::move(*this);
  }
  // "CODE: message" for logs and test failure output. Never contains secrets, because
  // messages never do.
  std::string ToString() const;
};

namespace internal {
// Result::value() on an error is a bug in the caller: it says so on stderr, naming the
// error, and aborts, in release builds too (a silent empty value would travel on).
[[noreturn]] void DieOnValueOfError(const Error& error);
}  // namespace internal

// A Status nobody looks at is a failure nobody handles: discarding one is a compile error.
// Where dropping it is the decision (best-effort cleanup), IgnoreError() says so.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error e) : error_(std::move(e)), ok_(false) {}  // NOLINT: implicit by design
  bool ok() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }
  Code code() const { return ok_ ? Code::kOk : error_.code; }
  std::string ToString() const { return ok_ ? "OK" : error_.ToString(); }
  void IgnoreError() const {}

 private:
  Error error_;
  bool ok_ = true;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}     // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  Result(Status status) : v_(status.error()) { assert(!status.ok()); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }
  Code code() const { return ok() ? Code::kOk : error().code; }
  Status status() const { return ok() ? Status() : Status(error()); }

  T& value() & {
    CheckOk();
    return std::get<0>(v_);
  }
  const T& value() const& {
    CheckOk();
    return std::get<0>(v_);
  }
  T&& value() && {
    CheckOk();
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  void CheckOk() const {
    if (!ok()) internal::DieOnValueOfError(std::get<1>(v_));
  }

  std::variant<T, Error> v_;
};

}  // namespace wsstep

// Propagates a failed Status/Result out of the enclosing function.
#define WSSTEP_RETURN_IF_ERROR(expr)           \
  do {                                         \
    auto _st = (expr);                         \
    if (!_st.ok()) return _st.error();         \
  } while (0)

#define WSSTEP_CONCAT_INNER(a, b) a##b
#define WSSTEP_CONCAT(a, b) WSSTEP_CONCAT_INNER(a, b)
// WSSTEP_ASSIGN_OR_RETURN(auto x, Foo()); declares x from a Result or returns its error.
#define WSSTEP_ASSIGN_OR_RETURN(lhs, expr) \
  WSSTEP_ASSIGN_OR_RETURN_IMPL(WSSTEP_CONCAT(_res_, __LINE__), lhs, expr)
#define WSSTEP_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.error();                 \
  lhs = std::move(tmp).value()

#endif  // WSSTEP_CORE_ERROR_H_
