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

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

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

}  // namespace wsstep::rest::curl

#endif  // WSSTEP_REST_CURL_HANDLES_H_
