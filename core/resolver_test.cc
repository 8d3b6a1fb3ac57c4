#include "core/resolver.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace wsstep::core {
namespace {

using ::testing::HasSubstr;

constexpr UnixSeconds kDay = 86400;
constexpr UnixSeconds kNow = 1'800'000'000;  // 2027-01-15T08:00:00Z

Binding B(std::string host, uint16_t port = 443, std::string env = "default") {
  return Binding{std::move(host), port, std::move(env)};
}

// A key-bearing entry valid from kNow - 100 days to kNow + 100 days unless told.
EntryMetadata Key(std::string name, std::vector<Binding> bindings,
                  UnixSeconds not_before = kNow - 100 * kDay,
                  UnixSeconds not_after = kNow + 100 * kDay) {
  EntryMetadata e;
  e.id = "id-" + name;
  e.name = std::move(name);
  e.type = EntryType::kKeyPair;
  e.bindings = std::move(bindings);
  e.has_private_key = true;
  e.certificate = CertificateInfo{};
  e.certificate->not_before = not_before;
  e.certificate->not_after = not_after;
  e.updated_at = kNow - 200 * kDay;
  return e;
}

EntryMetadata Expired(std::string name, std::vector<Binding> b, UnixSeconds not_after) {
  return Key(std::move(name), std::move(b), not_after - 365 * kDay, not_after);
}

CertificateInfo Cert(UnixSeconds not_before, UnixSeconds not_after) {
  CertificateInfo c;
  c.not_before = not_before;
  c.not_after = not_after;
  return c;
}

EntryMetadata Trust(std::string name, std::vector<Binding> bindings,
                    std::vector<CertificateInfo> certs = {Cert(kNow - kDay, kNow + kDay)}) {
  EntryMetadata e;
  e.id = "id-" + name;
  e.name = std::move(name);
  e.type = EntryType::kTrustStore;
  e.bindings = std::move(bindings);
  e.trusted = std::move(certs);
  return e;
}

template <typename F>
EntryMetadata With(EntryMetadata e, F&& change) {
  change(e);
  return e;
}

ResolveRequest Req(std::string host, uint16_t port = 443, std::string env = "default",
                   std::string name = {}) {
  ResolveRequest r;
  r.host = std::move(host);
  r.port = port;
  r.environment = std::move(env);
  r.certificate_name = std::move(name);
  r.now = kNow;
  return r;
}

using Rejected = std::vector<std::pair<std::string, std::string>>;  // (name, exact reason)

struct Case {
  Case(std::string t, std::vector<EntryMetadata> e, ResolveRequest r, Code c, std::string id = {},
       std::string msg = {}, Rejected rej = {})
      : title(std::move(t)),
        entries(std::move(e)),
        request(std::move(r)),
        code(c),
        identity(std::move(id)),
        message(std::move(msg)),
        rejected(std::move(rej)) {}
  std::string title;
  std::vector<EntryMetadata> entries;
  ResolveRequest request;
  Code code;
  std::string identity;  // name of the chosen entry when code is kOk
  std::string message;   // exact error message when code is not kOk (empty: not checked)
  Rejected rejected;     // in order
};

void CheckOnce(const Case& c, bool explain);

// Every case twice: the per-step path (explain=false) must choose, reject and refuse
// exactly as the explained one, and only a success's explanation differs.
void Check(const Case& c) {
  CheckOnce(c, true);
  CheckOnce(c, false);
}

void CheckOnce(const Case& c, bool explain) {
  SCOPED_TRACE(c.title + (explain ? " (explained)" : " (not explained)"));
  Snapshot snapshot(c.entries);
  ResolveRequest request = c.request;
  request.explain = explain;
  auto r = Resolve(snapshot, request);
  ASSERT_EQ(r.code(), c.code) << (r.ok() ? r->explanation : r.error().ToString());
  if (!r.ok()) {
    if (!c.message.empty()) {
      EXPECT_EQ(r.error().message, c.message);
    }
    EXPECT_EQ(r.error().detail.count("explanation"), 1u);
    EXPECT_EQ(r.error().detail.at("port"),
              std::to_string(c.request.port == 0 ? 443 : c.request.port));
    return;
  }
  ASSERT_NE(r->identity, nullptr);
  EXPECT_EQ(r->explanation.empty(), !explain);
  if (explain) {
    EXPECT_THAT(r->explanation, HasSubstr("chosen '" + c.identity + "' (id "));
  }
  EXPECT_EQ(r->identity->name, c.identity) << r->explanation;
  Rejected got;
  for (const auto& rej : r->rejected) got.emplace_back(rej.name, rej.reason);
  EXPECT_EQ(got, c.rejected) << r->explanation;
}

TEST(Resolver, HostMatching) {
  const std::vector<Case> cases = {
      {"host is case-insensitive",
       {Key("a", {B("api.example.com")})},
       Req("API.Example.COM"),
       Code::kOk,
       "a"},
      {"trailing dot ignored",
       {Key("a", {B("api.example.com")})},
       Req("api.example.com."),
       Code::kOk,
       "a"},
      {"binding stored un-normalized still matches",
       {Key("a", {B("API.example.COM.")})},
       Req("api.example.com"),
       Code::kOk,
       "a"},
      {"wildcard matches one label",
       {Key("w", {B("*.example.com")})},
       Req("a.example.com"),
       Code::kOk,
       "w"},
      {"wildcard matches case-insensitively",
       {Key("w", {B("*.Example.com")})},
       Req("A.EXAMPLE.com."),
       Code::kOk,
       "w"},
      {"wildcard does not match the apex",
       {Key("w", {B("*.example.com")})},
       Req("example.com"),
       Code::kCertificateNotFound,
       "",
       "SSL Certificate Not Found: no client certificate is bound to example.com:443 in "
       "environment default"},
      {"wildcard does not match two labels",
       {Key("w", {B("*.example.com")})},
       Req("a.b.example.com"),
       Code::kCertificateNotFound},
      {"wildcard never matches an IP literal",
       {Key("w", {B("*.0.0.1")})},
       Req("127.0.0.1"),
       Code::kCertificateNotFound},
      {"other host not matched",
       {Key("a", {B("api.example.com")})},
       Req("api.example.org"),
       Code::kCertificateNotFound},
      {"exact beats a newer wildcard",
       {Key("exact", {B("a.example.com")}), Key("wild", {B("*.example.com")}, kNow - kDay)},
       Req("a.example.com"),
       Code::kOk,
       "exact",
       "",
       {{"wild", "wildcard binding; an exact binding exists ('exact')"}}},
      {"unusable exact falls back to a valid wildcard",
       {Expired("exact", {B("a.example.com")}, kNow - 2 * kDay), Key("wild", {B("*.example.com")})},
       Req("a.example.com"),
       Code::kOk,
       "wild",
       "",
       {{"exact", "expired on 2027-01-13T08:00:00Z"}}},
      {"disabled exact falls back to a valid wildcard",
       {With(Key("exact", {B("a.example.com")}), [](auto& e) { e.disabled = true; }),
        Key("wild", {B("*.example.com")})},
       Req("a.example.com"),
       Code::kOk,
       "wild",
       "",
       {{"exact", "disabled"}}},
      {"exact and wildcard both expired: newest named",
       {Expired("exact", {B("a.example.com")}, kNow - 5 * kDay),
        Expired("wild", {B("*.example.com")}, kNow - 2 * kDay)},
       Req("a.example.com"),
       Code::kCertificateExpired,
       "",
       "client certificate 'wild' bound to a.example.com:443 in environment default expired "
       "on 2027-01-13T08:00:00Z"},
      {"port defaults to 443",
       {Key("a", {B("api.example.com")})},
       Req("api.example.com", 0),
       Code::kOk,
       "a"},
      {"binding port 0 means 443",
       {Key("a", {B("api.example.com", 0)})},
       Req("api.example.com", 443),
       Code::kOk,
       "a"},
      {"other port not matched",
       {Key("a", {B("api.example.com")})},
       Req("api.example.com", 8443),
       Code::kCertificateNotFound,
       "",
       "SSL Certificate Not Found: no client certificate is bound to api.example.com:8443 in "
       "environment default"},
      {"explicit port matched",
       {Key("a", {B("api.example.com", 8443)})},
       Req("api.example.com", 8443),
       Code::kOk,
       "a"},
      {"environment defaults to default",
       {Key("a", {B("api.example.com")})},
       Req("api.example.com", 443, ""),
       Code::kOk,
       "a"},
      {"environments are isolated",
       {Key("prod", {B("api.example.com", 443, "production")}),
        Key("sand", {B("api.example.com", 443, "sandbox")})},
       Req("api.example.com", 443, "sandbox"),
       Code::kOk,
       "sand"},
      {"production binding not used in default",
       {Key("prod", {B("api.example.com", 443, "production")})},
       Req("api.example.com"),
       Code::kCertificateNotFound},
      {"environment compares exactly",
       {Key("prod", {B("api.example.com", 443, "production")})},
       Req("api.example.com", 443, "Production"),
       Code::kCertificateNotFound},
  };
  for (const auto& c : cases) Check(c);
}

TEST(Resolver, DropsUnusableAndLatestWins) {
  const auto h = std::vector<Binding>{B("api.example.com")};
  const std::vector<Case> cases = {
      {"expired dropped",
       {Key("good", h), Expired("old", h, kNow - kDay)},
       Req("api.example.com"),
       Code::kOk,
       "good",
       "",
       {{"old", "expired on 2027-01-14T08:00:00Z"}}},
      {"not yet valid dropped",
       {Key("good", h), Key("future", h, kNow + kDay, kNow + 400 * kDay)},
       Req("api.example.com"),
       Code::kOk,
       "good",
       "",
       {{"future", "not valid before 2027-01-16T08:00:00Z"}}},
      {"disabled dropped",
       {Key("good", h), With(Key("off", h, kNow - kDay), [](auto& e) { e.disabled = true; })},
       Req("api.example.com"),
       Code::kOk,
       "good",
       "",
       {{"off", "disabled"}}},
      {"revoked dropped",
       {Key("good", h), With(Key("bad", h, kNow - kDay), [](auto& e) { e.revoked = true; })},
       Req("api.example.com"),
       Code::kOk,
       "good",
       "",
       {{"bad", "revoked"}}},
      {"expiring soon is still usable",
       {Key("soon", h, kNow - 10 * kDay, kNow + kDay), Key("old", h, kNow - 20 * kDay)},
       Req("api.example.com"),
       Code::kOk,
       "soon",
       "",
       {{"old",
         "older than 'soon' (not before 2026-12-26T08:00:00Z; 'soon' not before "
         "2027-01-05T08:00:00Z)"}}},
      {"greatest not_before wins",
       {Key("new", h, kNow - 10 * kDay), Key("old", h, kNow - 20 * kDay)},
       Req("api.example.com"),
       Code::kOk,
       "new",
       "",
       {{"old",
         "older than 'new' (not before 2026-12-26T08:00:00Z; 'new' not before "
         "2027-01-05T08:00:00Z)"}}},
      {"tie on not_before: most recently saved wins",
       {With(Key("later", h), [](auto& e) { e.updated_at = kNow - kDay; }),
        With(Key("earlier", h), [](auto& e) { e.updated_at = kNow - 2 * kDay; })},
       Req("api.example.com"),
       Code::kOk,
       "later",
       "",
       {{"earlier", "older than 'later' (same not before 2026-10-07T08:00:00Z, saved earlier)"}}},
      {"full tie: later in the snapshot wins",
       {Key("first", h), Key("second", h)},
       Req("api.example.com"),
       Code::kOk,
       "second",
       "",
       {{"first",
         "older than 'second' (same not before 2026-10-07T08:00:00Z and save time, earlier in "
         "the store)"}}},
      {"bound on two bindings counts once",
       {Key("a", {B("api.example.com"), B("API.example.com.")})},
       Req("api.example.com"),
       Code::kOk,
       "a"},
      {"pending and provisioning entries are no candidates",
       {With(Key("csr", h), [](auto& e) { e.pending_certificate = true; }),
        With(Key("mp", h), [](auto& e) { e.type = EntryType::kMobileProvisioning; }),
        Key("good", h, kNow - 300 * kDay)},
       Req("api.example.com"),
       Code::kOk,
       "good",
       "",
       {{"csr", "waiting for its issued certificate (key and CSR only)"},
        {"mp", "mobile provisioning profile: never used for TLS"}}},
  };
  for (const auto& c : cases) Check(c);
}

TEST(Resolver, NothingUsable) {
  const auto h = std::vector<Binding>{B("api.example.com")};
  const std::vector<Case> cases = {
      {"nothing bound",
       {Key("elsewhere", {B("other.example.com")})},
       Req("api.example.com"),
       Code::kCertificateNotFound,
       "",
       "SSL Certificate Not Found: no client certificate is bound to api.example.com:443 in "
       "environment default"},
      {"only a trust store and a pending key bound",
       {Trust("ca", h), With(Key("csr", h), [](auto& e) { e.pending_certificate = true; })},
       Req("api.example.com"),
       Code::kCertificateNotFound,
       "",
       "SSL Certificate Not Found: no client certificate is bound to api.example.com:443 in "
       "environment default"},
      {"all expired: the newest is named",
       {Expired("older", h, kNow - 30 * kDay), Expired("newest", h, kNow - 3 * kDay),
        Expired("oldest", h, kNow - 300 * kDay)},
       Req("api.example.com"),
       Code::kCertificateExpired,
       "",
       "client certificate 'newest' bound to api.example.com:443 in environment default "
       "expired on 2027-01-12T08:00:00Z"},
      {"all not yet valid: the first to become valid is named",
       {Key("later", h, kNow + 9 * kDay, kNow + 99 * kDay),
        Key("sooner", h, kNow + 2 * kDay, kNow + 99 * kDay)},
       Req("api.example.com"),
       Code::kCertificateNotYetValid,
       "",
       "client certificate 'sooner' bound to api.example.com:443 in environment default is "
       "not valid before 2027-01-17T08:00:00Z"},
      {"expired plus not yet valid: not yet valid (a renewal that will start)",
       {Expired("old", h, kNow - kDay), Key("renewal", h, kNow + kDay, kNow + 99 * kDay)},
       Req("api.example.com"),
       Code::kCertificateNotYetValid},
      {"expired plus disabled: expired",
       {Expired("old", h, kNow - kDay), With(Key("off", h), [](auto& e) { e.disabled = true; })},
       Req("api.example.com"),
       Code::kCertificateExpired},
      {"only disabled or revoked",
       {With(Key("off", h), [](auto& e) { e.disabled = true; }),
        With(Key("bad", h), [](auto& e) { e.revoked = true; })},
       Req("api.example.com"),
       Code::kCertificateNotFound,
       "",
       "SSL Certificate Not Found: every client certificate bound to api.example.com:443 in "
       "environment default is disabled or revoked"},
  };
  for (const auto& c : cases) Check(c);
}

TEST(Resolver, ErrorsCarryDetails) {
  Snapshot s({Expired("old", {B("api.example.com", 8443, "production")}, kNow - kDay)});
  auto r = Resolve(s, Req("API.example.com.", 8443, "production"));
  ASSERT_EQ(r.code(), Code::kCertificateExpired);
  const auto& d = r.error().detail;
  EXPECT_EQ(d.at("host"), "api.example.com");
  EXPECT_EQ(d.at("port"), "8443");
  EXPECT_EQ(d.at("environment"), "production");
  EXPECT_EQ(d.at("certificate"), "old");
  EXPECT_EQ(d.at("expired_on"), "2027-01-14T08:00:00Z");
  EXPECT_THAT(d.at("explanation"), HasSubstr("rejected 'old' (id id-old): expired on"));

  auto none = Resolve(Snapshot(std::vector<EntryMetadata>{}), Req("api.example.com"));
  ASSERT_EQ(none.code(), Code::kCertificateNotFound);
  EXPECT_THAT(none.error().hint, HasSubstr("switch off"));
  EXPECT_EQ(none.error().detail.at("environment"), "default");
  EXPECT_EQ(none.error().detail.count("certificate"), 0u);

  Snapshot future({Key("f", {B("h.example")}, kNow + kDay, kNow + 9 * kDay)});
  auto nyv = Resolve(future, Req("h.example"));
  ASSERT_EQ(nyv.code(), Code::kCertificateNotYetValid);
  EXPECT_EQ(nyv.error().detail.at("valid_from"), "2027-01-16T08:00:00Z");
}

TEST(Resolver, NoIdentityRequired) {
  Snapshot s({Trust("ca", {B("api.example.com")})});
  auto r = Resolve(s, Req("api.example.com"), /*require_identity=*/false);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->identity, nullptr);
  ASSERT_EQ(r->trust.size(), 1u);
  EXPECT_THAT(r->explanation, HasSubstr("none bound"));
  ResolveRequest quiet = Req("api.example.com");
  quiet.explain = false;
  auto q = Resolve(s, quiet, false);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->trust.size(), 1u);
  EXPECT_EQ(q->explanation, "");
  // Bound but unusable is still an error: the call would otherwise fail obscurely.
  Snapshot expired({Expired("old", {B("api.example.com")}, kNow - kDay)});
  EXPECT_EQ(Resolve(expired, Req("api.example.com"), false).code(), Code::kCertificateExpired);
}

TEST(Resolver, ExplicitName) {
  const auto prod = std::vector<Binding>{B("api.a.example", 443, "production")};
  const std::vector<Case> cases = {
      {"named and bound",
       {Key("mine", prod), Key("newer", prod, kNow - kDay)},
       Req("api.a.example", 443, "production", "mine"),
       Code::kOk,
       "mine",
       "",
       {{"newer", "the step names 'mine'"}}},
      {"named case-insensitively",
       {Key("Mine", prod)},
       Req("api.a.example", 443, "production", "mINE"),
       Code::kOk,
       "Mine"},
      {"named by id",
       {Key("mine", prod)},
       Req("api.a.example", 443, "production", "id-mine"),
       Code::kOk,
       "mine"},
      {"named and bound by wildcard",
       {Key("w", {B("*.a.example", 443, "production")})},
       Req("API.a.example.", 443, "production", "w"),
       Code::kOk,
       "w"},
      {"unbound certificate may be named",
       {Key("free", {})},
       Req("anything.example", 8443, "x", "free"),
       Code::kOk,
       "free"},
      {"unknown name",
       {Key("mine", prod)},
       Req("api.a.example", 443, "production", "nope"),
       Code::kCertificateNotFound,
       "",
       "no certificate named 'nope'"},
      {"bound elsewhere is refused",
       {Key("X", prod)},
       Req("evil.example", 443, "", "X"),
       Code::kCertificateNotFound,
       "",
       "certificate 'X' is bound to api.a.example:443 (production), not to evil.example:443 "
       "(default)"},
      {"bound in another environment is refused",
       {Key("X", prod)},
       Req("api.a.example", 443, "default", "X"),
       Code::kCertificateNotFound,
       "",
       "certificate 'X' is bound to api.a.example:443 (production), not to api.a.example:443 "
       "(default)"},
      {"bound to another port is refused",
       {Key("X", prod)},
       Req("api.a.example", 8443, "production", "X"),
       Code::kCertificateNotFound},
      {"named expiring soon",
       {Key("X", prod, kNow - kDay, kNow + kDay)},
       Req("api.a.example", 443, "production", "X"),
       Code::kOk,
       "X"},
      {"named expired",
       {Expired("X", prod, kNow - kDay)},
       Req("api.a.example", 443, "production", "X"),
       Code::kCertificateExpired,
       "",
       "certificate 'X' expired on 2027-01-14T08:00:00Z"},
      {"named not yet valid",
       {Key("X", prod, kNow + kDay, kNow + 9 * kDay)},
       Req("api.a.example", 443, "production", "X"),
       Code::kCertificateNotYetValid,
       "",
       "certificate 'X' is not valid before 2027-01-16T08:00:00Z"},
      {"named disabled",
       {With(Key("X", prod), [](auto& e) { e.disabled = true; })},
       Req("api.a.example", 443, "production", "X"),
       Code::kCertificateNotFound,
       "",
       "certificate 'X' is disabled"},
      {"named revoked",
       {With(Key("X", prod), [](auto& e) { e.revoked = true; })},
       Req("api.a.example", 443, "production", "X"),
       Code::kCertificateNotFound,
       "",
       "certificate 'X' is revoked"},
      {"named trust store",
       {Trust("ca", prod)},
       Req("api.a.example", 443, "production", "ca"),
       Code::kCertificateNotFound,
       "",
       "certificate 'ca' has no private key, so it cannot be presented as a client certificate"},
      {"named pending key",
       {With(Key("csr", prod), [](auto& e) { e.pending_certificate = true; })},
       Req("api.a.example", 443, "production", "csr"),
       Code::kCertificateNotFound,
       "",
       "certificate 'csr' is waiting for its issued certificate (only its key and CSR exist)"},
  };
  for (const auto& c : cases) Check(c);
}

TEST(Resolver, BindingsListInRefusalIsCapped) {
  std::vector<Binding> many;
  for (int i = 0; i < 7; ++i) many.push_back(B("h" + std::to_string(i) + ".example"));
  Snapshot s({Key("X", many)});
  auto r = Resolve(s, Req("evil.example", 443, "default", "X"));
  ASSERT_EQ(r.code(), Code::kCertificateNotFound);
  EXPECT_EQ(r.error().message,
            "certificate 'X' is bound to h0.example:443 (default), h1.example:443 (default), "
            "h2.example:443 (default), h3.example:443 (default), h4.example:443 (default) and 2 "
            "more, not to evil.example:443 (default)");
}

TEST(Resolver, GathersTrust) {
  const auto h = std::vector<Binding>{B("api.example.com")};
  auto jks = With(Key("jks", h), [](auto& e) {
    e.type = EntryType::kJavaKeystore;
    e.trusted = {Cert(kNow - kDay, kNow + kDay)};
  });
  Snapshot s({
      Trust("exact-ca", h),
      Trust("wild-ca", {B("*.example.com")}),
      Trust("other-env", {B("api.example.com", 443, "production")}),
      Trust("other-host", {B("x.example.org")}),
      With(Trust("off", h), [](auto& e) { e.disabled = true; }),
      With(Trust("bad", h), [](auto& e) { e.revoked = true; }),
      Trust("stale", h,
            {Cert(kNow - 9 * kDay, kNow - 3 * kDay), Cert(kNow - 9 * kDay, kNow - kDay)}),
      Trust("early", h, {Cert(kNow + kDay, kNow + 9 * kDay)}),
      Trust("partly-stale", h,
            {Cert(kNow - 9 * kDay, kNow - kDay), Cert(kNow - kDay, kNow + kDay)}),
      jks,
      // Trusted certificates on a KEY_PAIR entry do not make it a trust entry.
      With(Key("kp", {B("nothing.example")}), [](auto& e) { e.trusted = {Cert(0, kNow * 2)}; }),
  });
  auto r = Resolve(s, Req("api.example.com"));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->identity->name, "jks");
  std::vector<std::string> trust;
  for (const auto* e : r->trust) trust.push_back(e->name);
  EXPECT_EQ(trust, (std::vector<std::string>{"exact-ca", "wild-ca", "partly-stale", "jks"}));
  EXPECT_FALSE(r->private_trust_only);
  Rejected rejected;
  for (const auto& rej : r->rejected) rejected.emplace_back(rej.name, rej.reason);
  EXPECT_EQ(rejected,
            (Rejected{
                {"off", "trust store disabled"},
                {"bad", "trust store revoked"},
                {"stale",
                 "trust store skipped: all 2 of its certificates expired (the last on "
                 "2027-01-14T08:00:00Z)"},
                {"early",
                 "trust store skipped: none of its certificates is valid yet (the first from "
                 "2027-01-16T08:00:00Z)"},
            }));
  EXPECT_THAT(r->explanation, HasSubstr("trust for api.example.com:443 (default): 'exact-ca'"));
  EXPECT_THAT(r->explanation, HasSubstr("plus the system CAs"));
}

TEST(Resolver, PrivateTrustOnly) {
  const auto h = std::vector<Binding>{B("api.example.com")};
  auto priv = [](EntryMetadata e) {
    e.private_trust_only = true;
    return e;
  };
  {
    Snapshot s({Key("k", h), Trust("public", h), priv(Trust("private", {B("*.example.com")}))});
    auto r = Resolve(s, Req("api.example.com"));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->private_trust_only);
    EXPECT_THAT(r->explanation, HasSubstr("private trust only"));
  }
  {
    // A private-only store that is skipped (disabled, expired) does not count.
    Snapshot s({Key("k", h), Trust("public", h),
                priv(With(Trust("private", h), [](auto& e) { e.disabled = true; })),
                priv(Trust("expired", h, {Cert(0, kNow - 1)}))});
    auto r = Resolve(s, Req("api.example.com"));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->private_trust_only);
    EXPECT_EQ(r->trust.size(), 1u);
  }
  {
    // Trust is also gathered when a step names its certificate.
    Snapshot s({Key("k", {}), priv(Trust("private", h))});
    auto r = Resolve(s, Req("api.example.com", 443, "default", "k"));
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->private_trust_only);
    EXPECT_EQ(r->trust.size(), 1u);
  }
}

TEST(Resolver, ExplanationListsChoiceAndRejections) {
  const auto h = std::vector<Binding>{B("api.example.com")};
  Snapshot s({Key("new", h, kNow - kDay), Expired("old", h, kNow - kDay)});
  auto r = Resolve(s, Req("api.example.com"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->explanation,
            "client certificate for api.example.com:443 (default):\n"
            "  chosen 'new' (id id-new), not before 2027-01-14T08:00:00Z, not after "
            "2027-04-25T08:00:00Z, exact binding\n"
            "  rejected 'old' (id id-old): expired on 2027-01-14T08:00:00Z\n"
            "trust for api.example.com:443 (default): no trust store bound; the system CAs\n");
  EXPECT_EQ(r->rejected.at(0).status, CertStatus::kExpired);
  EXPECT_EQ(r->rejected.at(0).entry_id, "id-old");
}

TEST(Resolver, HostMatchesTable) {
  struct Row {
    std::string_view pattern, host;
    bool match;
  };
  const Row rows[] = {
      {"api.example.com", "api.example.com", true},
      {"api.example.com", "API.EXAMPLE.COM.", true},
      {"api.example.com", "api.example.co", false},
      {"*.example.com", "a.example.com", true},
      {"*.example.com", "example.com", false},
      {"*.example.com", "a.b.example.com", false},
      {"*.example.com", ".example.com", false},
      {"*.example.com", "*.example.com", false},
      {"*.example.com", "aexample.com", false},
      {"*.1.1.1", "1.1.1.1", false},
      {"*.example.com", "::1", false},
      {"*", "a", false},
  };
  for (const auto& row : rows) {
    EXPECT_EQ(HostMatches(row.pattern, row.host), row.match) << row.pattern << " ~ " << row.host;
  }
}

TEST(Resolver, SnapshotLookups) {
  Snapshot original({Key("Alpha", {B("a.example"), B("*.example")}),
                     Key("beta", {B("*.example"), B("*.example", 443, "default")})});
  // Copies share the index; it must stay valid once the original is gone.
  auto copy = std::make_unique<Snapshot>(original);
  { Snapshot gone = std::move(original); }
  EXPECT_EQ(copy->FindByName("ALPHA")->id, "id-Alpha");
  EXPECT_EQ(copy->FindById("id-beta")->name, "beta");
  EXPECT_EQ(copy->FindById("ID-BETA"), nullptr);  // ids are exact
  EXPECT_EQ(copy->FindByName("gamma"), nullptr);
  auto m = copy->FindBound("a.example", 443, "default");
  ASSERT_EQ(m.exact.size(), 1u);
  EXPECT_EQ(m.exact[0]->name, "Alpha");
  ASSERT_EQ(m.wildcard.size(), 1u);  // Alpha counts as exact only; beta once
  EXPECT_EQ(m.wildcard[0]->name, "beta");
}

// Snapshot order is the position in entries(), never the entries' addresses: shared
// entries outlive the snapshot that created them, so a later position may hold an older
// allocation.
TEST(Resolver, SnapshotOrderIsPositionNotAddress) {
  const std::vector<Binding> h{B("api.example.com"), B("*.example.com")};
  auto second = std::make_shared<const EntryMetadata>(Key("second", h));
  auto first = std::make_shared<const EntryMetadata>(Key("first", h));
  for (const bool second_is_older_allocation : {true, false}) {
    Snapshot::Entries entries = {first, second};
    if (!second_is_older_allocation) {
      entries = {std::make_shared<const EntryMetadata>(*first),
                 std::make_shared<const EntryMetadata>(*second)};
    }
    const Snapshot snap(entries);
    auto r = Resolve(snap, Req("api.example.com"), true);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->identity->name, "second") << "full tie: the later position wins";
    EXPECT_EQ(snap.PositionOf(r->identity), 1);
    auto m = snap.FindBound("api.example.com", 443, "default");
    ASSERT_EQ(m.exact.size(), 2u);
    EXPECT_EQ(m.exact[0]->name, "first");
    EXPECT_EQ(m.exact_positions, (std::vector<uint32_t>{0, 1}));
    EXPECT_TRUE(m.wildcard.empty()) << "bound exactly as well";
  }
}

TEST(Resolver, Iso8601Utc) {
  EXPECT_EQ(Iso8601Utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(Iso8601Utc(kNow), "2027-01-15T08:00:00Z");
  EXPECT_EQ(Iso8601Utc(951782400), "2000-02-29T00:00:00Z");
  EXPECT_EQ(Iso8601Utc(-1), "1969-12-31T23:59:59Z");
  EXPECT_EQ(Iso8601Utc(253402300799), "9999-12-31T23:59:59Z");
}

TEST(Resolver, HundredThousandEntries) {
  constexpr int kEntries = 100'000;
  std::vector<EntryMetadata> entries;
  entries.reserve(kEntries);
  for (int i = 0; i < kEntries; ++i) {
    const std::string n = std::to_string(i);
    std::vector<Binding> b = {B("host" + n + ".example.com", static_cast<uint16_t>(443 + i % 3),
                                i % 2 == 0 ? "default" : "production")};
    if (i % 10 == 0) b.push_back(B("*.zone" + n + ".example.net"));
    auto e = Key("cert-" + n, std::move(b), kNow - 100 * kDay + i);
    e.id = "00000000-0000-4000-8000-" + std::string(12 - n.size(), '0') + n;
    if (i % 7 == 0) e.certificate->not_after = kNow - kDay;  // expired
    entries.push_back(std::move(e));
  }
  entries.push_back(Trust("ca-77", {B("*.example.com", 444, "production")}));
  Snapshot s(std::move(entries));
  ASSERT_EQ(s.entries().size(), static_cast<size_t>(kEntries + 1));

  for (int i : {1, 2, 12'345, 99'999}) {
    SCOPED_TRACE(i);
    const std::string n = std::to_string(i);
    auto r = Resolve(s, Req("HOST" + n + ".example.com.", static_cast<uint16_t>(443 + i % 3),
                            i % 2 == 0 ? "default" : "production"));
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    EXPECT_EQ(r->identity->name, "cert-" + n);
    EXPECT_EQ(r->trust.size(), (i % 3 == 1 && i % 2 == 1) ? 1u : 0u);
  }
  EXPECT_EQ(Resolve(s, Req("host7.example.com", 444, "production")).code(),
            Code::kCertificateExpired);
  EXPECT_EQ(Resolve(s, Req("host1.example.com", 444, "default")).code(),
            Code::kCertificateNotFound);
  auto w = Resolve(s, Req("a.zone50.example.net"));
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->identity->name, "cert-50");
  EXPECT_EQ(Resolve(s, Req("a.zone51.example.net")).code(), Code::kCertificateNotFound);
  auto named = Resolve(s, Req("host3.example.com", 443, "production", "CERT-3"));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->identity->id, "00000000-0000-4000-8000-000000000003");
  EXPECT_EQ(s.FindById("00000000-0000-4000-8000-000000054321")->name, "cert-54321");
}

}  // namespace
}  // namespace wsstep::core
