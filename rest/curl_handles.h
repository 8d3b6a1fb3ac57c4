// Owners of libcurl's handles, as core/ossl.h owns OpenSSL's: each handle is freed by the
// unique_ptr that holds it, on success and error paths alike.
//
//   curl::MultiPtr multi(curl_multi_init());
//   curl::EasyPtr easy(curl_easy_init());
//   curl::SlistPtr headers;                  // Append() below; wiped when freed
//   if (!curl::Append(headers, "Accept: application/json")) ...out of memory...
#ifndef WSSTEP_REST_CURL_HANDLES_H_
#define WSSTEP_REST_CURL_HANDLES_H_

#include <curl/curl.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/ossl.h"

namespace wsstep::rest::curl {

using ossl::Deleter;  // the same template: frees a handle with the function given

using EasyPtr = std::unique_ptr<CURL, Deleter<curl_easy_cleanup>>;
using MultiPtr = std::unique_ptr<CURLM, Deleter<curl_multi_cleanup>>;
using SharePtr = std::unique_ptr<CURLSH, Deleter<curl_share_cleanup>>;

// Header lists may carry Authorization values: wiped before they are freed.
struct SlistDeleter {
  void operator()(curl_slist* list) const {
    for (curl_slist* n = list; n != nullptr; n = n->next) {
      OPENSSL_cleanse(n->data, std::strlen(n->data));
    }
    curl_slist_free_all(list);
  }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// A call whose arguments the engine chose (a setopt with constants, adding a handle it
// owns) fails only on a defect or when libcurl cannot allocate: loud, never a silently
// different request. Calls whose failure is an answer (perform, poll) are checked where
// they are made.
template <typename T>
void Setopt(CURL* easy, CURLoption option, T value) {
  const CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK) {
    std::fprintf(stderr, "wsstep: curl_easy_setopt(%d) failed: %s\n", static_cast<int>(option),
                 curl_easy_strerror(rc));
    std::abort();
  }
}
inline void CheckMulti(CURLMcode rc, const char* what) {
  if (rc != CURLM_OK) {
    std::fprintf(stderr, "wsstep: %s failed: %s\n", what, curl_multi_strerror(rc));
    std::abort();
  }
}

// Appends a line to `list`; false (the list unchanged) when libcurl cannot allocate.
inline bool Append(SlistPtr& list, const std::string& line) {
  curl_slist* next = curl_slist_append(list.get(), line.c_str());
  if (next == nullptr) return false;
  (void)list.release();  // `next` is the same list, one line longer
  list.reset(next);
  return true;
}

// A request's own header lines as a curl_slist whose text and nodes this object owns,
// ending in a tail it does not own (libcurl only reads a header list, so a tail built
// once may end every request's list). One buffer holds the text of every line and one
// vector the nodes, instead of libcurl's two allocations per line plus a walk to the end
// for each append. The text may carry Authorization values: wiped on destruction, and
// sized up front (Reserve) so that it is never moved, leaving a copy behind.
class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  ~HeaderList() { OPENSSL_cleanse(text_.data(), text_.size()); }

  // Room for `lines` lines whose names and values add up to `bytes`: one allocation for
  // all of them. Only a hint: a line that does not fit moves the text itself.
  void Reserve(size_t lines, size_t bytes) {
    Grow(bytes + lines * 3);  // ": " and the terminating NUL
    nodes_.reserve(lines);
  }
  // "name: value"; "name;" for an empty value (libcurl's way to send an empty header).
  // A NUL ends the line there, as it would a C string handed to curl_slist_append.
  void Add(std::string_view name, std::string_view value) {
    Grow(name.size() + value.size() + 3);
    const size_t start = text_.size();
    text_.append(name);
    if (value.empty()) {
      text_.push_back(';');
    } else {
      text_.append(": ").append(value);
    }
    if (const size_t nul = text_.find('\0', start); nul != std::string::npos) {
      OPENSSL_cleanse(text_.data() + nul, text_.size() - nul);
      text_.resize(nul);
    }
    text_.push_back('\0');
    ++lines_;
  }
  // The lines in the order added, then `tail`. Valid while this object lives and no line
  // is added; null `tail` ends the list with the last line.
  curl_slist* Link(curl_slist* tail) {
    nodes_.clear();
    nodes_.resize(lines_);
    char* line = text_.data();
    for (size_t i = 0; i < lines_; ++i) {
      nodes_[i].data = line;
      nodes_[i].next = i + 1 < lines_ ? &nodes_[i + 1] : tail;
      line += std::strlen(line) + 1;
    }
    return lines_ == 0 ? tail : nodes_.data();
  }

 private:
  // Room for `more` bytes. The text is moved by hand, not by std::string, so that the
  // buffer it leaves is wiped first.
  void Grow(size_t more) {
    if (text_.size() + more <= text_.capacity()) return;
    std::string larger;
    larger.reserve(std::max(text_.size() + more, 2 * text_.capacity()));
    larger.append(text_);
    OPENSSL_cleanse(text_.data(), text_.size());
    text_.swap(larger);
  }

  std::string text_;  // the lines, each ended by a NUL
  std::vector<curl_slist> nodes_;
  size_t lines_ = 0;
};

}  // namespace wsstep::rest::curl

#endif  // WSSTEP_REST_CURL_HANDLES_H_
