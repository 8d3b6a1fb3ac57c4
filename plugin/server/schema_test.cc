// The step configs' JSON Schemas, generated from the proto and its comments.
#include "plugin/server/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "wsstep/v1/step_plugin_service.grpc.pb.h"

namespace wsstep::plugin {
namespace {

using ::testing::HasSubstr;

TEST(SchemaTest, RestStepSchemaIsGeneratedFromTheProto) {
  const auto s = nlohmann::json::parse(StepConfigSchema(v1::RestStep::descriptor()));
  EXPECT_EQ(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
  EXPECT_EQ(s["$ref"], "#/$defs/wsstep.v1.RestStep");
  const auto& rest = s["$defs"]["wsstep.v1.RestStep"];
  EXPECT_EQ(rest["properties"]["maxResponseBytes"]["type"], nlohmann::json({"integer", "string"}));
  EXPECT_EQ(rest["properties"]["body"]["contentEncoding"], "base64");
  EXPECT_EQ(rest["additionalProperties"], false);
  // Descriptions come from the proto comments.
  EXPECT_THAT(rest["properties"]["url"]["description"].get<std::string>(),
              HasSubstr("Absolute http(s) URL"));
  // Secrets are write-only.
  const auto& basic = s["$defs"]["wsstep.v1.BasicAuth"];
  EXPECT_EQ(basic["properties"]["password"]["writeOnly"], true);
  EXPECT_FALSE(basic["properties"]["username"].contains("writeOnly"));
  // Wrappers and enums.
  const auto& tls = s["$defs"]["wsstep.v1.TlsOptions"];
  EXPECT_EQ(tls["properties"]["verifyPeer"]["type"], "boolean");
  EXPECT_THAT(tls["properties"]["minTlsVersion"]["enum"].dump(), HasSubstr("TLS_VERSION_1_3"));
  // A oneof allows one member at most.
  ASSERT_TRUE(s["$defs"]["wsstep.v1.HttpAuth"].contains("allOf"));
  EXPECT_EQ(s["$defs"]["wsstep.v1.HttpAuth"]["allOf"][0]["oneOf"].size(), 5u);
}

TEST(SchemaTest, SoapStepSchemaHandlesTheRecursiveElementTree) {
  const auto s = nlohmann::json::parse(StepConfigSchema(v1::SoapStep::descriptor()));
  const auto& el = s["$defs"]["wsstep.v1.XmlElement"];
  EXPECT_EQ(el["properties"]["children"]["items"]["$ref"], "#/$defs/wsstep.v1.XmlElement");
  EXPECT_EQ(s["$defs"]["wsstep.v1.WsSecurity"]["properties"]["timestampTtl"]["pattern"],
            "^-?[0-9]+(\\.[0-9]{1,9})?s$");
}

}  // namespace
}  // namespace wsstep::plugin
