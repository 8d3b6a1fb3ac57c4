// PreparedStep: a REST step checked once, with its URLs parsed once. RestEngine::Prepare
// makes one from a RestStep; from there the parts travel with the step (the plugin
// resolves the client certificate from url(), the engine connects to it, the transfer
// reads it) instead of each layer parsing the URL text again.
//
//   Result<PreparedStep> p = engine.Prepare(std::move(step));
//   if (!p.ok()) return p.error();          // INVALID_STEP_CONFIG naming the field
//   resolve(p->url().host, p->url().port);  // no second parse
//   engine.Submit(std::move(p).value(), credentials, deadline, cancel, done);
#ifndef WSSTEP_REST_PREPARED_STEP_H_
#define WSSTEP_REST_PREPARED_STEP_H_

#include <optional>
#include <string>
#include <utility>

#include "rest/http_text.h"
#include "rest/step.h"

namespace wsstep::rest {

class RestEngine;

class PreparedStep {
 public:
  const RestStep& step() const { return step_; }
  // The step's URL, as given (before query parameters are appended).
  const UrlParts& url() const { return url_; }
  // The OAuth2 token endpoint's parts when the step authenticates with OAuth2.
  const std::optional<UrlParts>& token_url() const { return token_url_; }
  // Replaces the request body after the checks (Prepare does not look at the body): a
  // SOAP envelope is signed only once the endpoint's identity has been resolved.
  void ReplaceBody(std::string body) { step_.body = std::move(body); }

 private:
  friend class RestEngine;  // only the engine's checks make one
  PreparedStep(RestStep step, UrlParts url, std::optional<UrlParts> token_url)
      : step_(std::move(step)), url_(std::move(url)), token_url_(std::move(token_url)) {}

  RestStep step_;
  UrlParts url_;
  std::optional<UrlParts> token_url_;
};

}  // namespace wsstep::rest

#endif  // WSSTEP_REST_PREPARED_STEP_H_
