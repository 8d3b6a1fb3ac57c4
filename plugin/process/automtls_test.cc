// AutoMTLS: the certificate the plugin makes has the shape go-plugin expects.
#include "plugin/process/automtls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/ossl.h"

namespace wsstep::plugin {
namespace {

using ::testing::HasSubstr;

TEST(AutoMtlsTest, SelfSignedCertificateHasTheGoPluginShape) {
  auto cert = GenerateSelfSignedCertificate("localhost", std::chrono::hours(1));
  ASSERT_TRUE(cert.ok()) << cert.error().ToString();
  EXPECT_THAT(cert->cert_pem, HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_THAT(std::string(cert->key_pem.view()), HasSubstr("BEGIN PRIVATE KEY"));
  const auto* p = reinterpret_cast<const unsigned char*>(cert->cert_der.data());
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(cert->cert_der.size())));
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_check_host(x.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ca(x.get()), 1);
  EXPECT_EQ(X509_check_issued(x.get(), x.get()), X509_V_OK);  // self-signed
  ossl::EvpPkeyPtr key(X509_get_pubkey(x.get()));
  EXPECT_EQ(EVP_PKEY_get_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
  // Valid now, not for long.
  EXPECT_LT(X509_cmp_current_time(X509_get0_notBefore(x.get())), 0);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(x.get())), 0);
  auto pem = DerToPem(cert->cert_der);
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(*pem, cert->cert_pem);
  EXPECT_TRUE(CheckPemCertificates(cert->cert_pem, "PLUGIN_CLIENT_CERT").ok());
  EXPECT_EQ(CheckPemCertificates("garbage", "PLUGIN_CLIENT_CERT").code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace wsstep::plugin
