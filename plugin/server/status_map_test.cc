// The one mapping from wsstep errors to wire errors: step errors and gRPC statuses.
#include "plugin/server/status_map.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace wsstep::plugin {
namespace {

TEST(StatusMapTest, EveryCatalogCodeHasItsProtoValue) {
  for (int i = static_cast<int>(Code::kInvalidCertificateFormat);
       i <= static_cast<int>(Code::kProxyRefused); ++i) {  // the last code
    const Code code = static_cast<Code>(i);
    const v1::ErrorCode proto = ToProtoErrorCode(code);
    EXPECT_NE(proto, v1::ERROR_CODE_UNSPECIFIED) << CodeName(code);
    EXPECT_EQ(v1::ErrorCode_Name(proto), "ERROR_CODE_" + std::string(CodeName(code)));
    EXPECT_EQ(FromProtoErrorCode(proto), code) << CodeName(code);
  }
  EXPECT_EQ(ToProtoErrorCode(Code::kOk), v1::ERROR_CODE_UNSPECIFIED);
}

TEST(StatusMapTest, EverySideHasItsProtoValue) {
  for (Side side : {Side::kConfiguration, Side::kClient, Side::kServer, Side::kNetwork,
                    Side::kStore, Side::kPlugin, Side::kProxy}) {
    EXPECT_NE(ToProtoSide(side), v1::ERROR_SIDE_UNSPECIFIED) << SideName(side);
    EXPECT_EQ(FromProtoSide(ToProtoSide(side)), side) << SideName(side);
  }
  EXPECT_EQ(ToProtoSide(Side::kProxy), v1::ERROR_SIDE_PROXY);
}

TEST(StatusMapTest, StepErrorCarriesNameEnumHintSideAndDetail) {
  Error e(Code::kClientCertRejected,
          "api.bank.example:443 rejected the client certificate 'bank' (unknown_ca)",
          "ask the bank to trust the issuing CA", Side::kServer);
  e.With("alert", "unknown_ca").With("host", "api.bank.example");
  v1::StepError out;
  FillStepError(e, &out);
  EXPECT_EQ(out.code(), "CLIENT_CERT_REJECTED");
  EXPECT_EQ(out.error_code(), v1::ERROR_CODE_CLIENT_CERT_REJECTED);
  EXPECT_EQ(out.message(), e.message);
  EXPECT_EQ(out.hint(), e.hint);
  EXPECT_EQ(out.side(), v1::ERROR_SIDE_SERVER);
  EXPECT_EQ(out.detail().at("alert"), "unknown_ca");
  const Error back = FromStepError(out);
  EXPECT_EQ(back.code, e.code);
  EXPECT_EQ(back.detail, e.detail);
}

TEST(StatusMapTest, GrpcCodes) {
  EXPECT_EQ(GrpcCodeFor(Code::kWrongPassword), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcCodeFor(Code::kInvalidStepConfig), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(GrpcCodeFor(Code::kNotFound), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(GrpcCodeFor(Code::kDuplicateName), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(GrpcCodeFor(Code::kFailedPrecondition), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GrpcCodeFor(Code::kMasterKeyError), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GrpcCodeFor(Code::kTimeout), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(GrpcCodeFor(Code::kStorageError), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(GrpcCodeFor(Code::kInternal), grpc::StatusCode::INTERNAL);
}

TEST(StatusMapTest, ContractErrorCarriesErrorInfoAndFieldViolations) {
  Error e(Code::kWrongPassword, "client.p12: wrong password", "check the PKCS#12 password",
          Side::kConfiguration);
  e.With("field", "material.password");
  const grpc::Status s = ToGrpcStatus(e, {{"material.content_name", "example"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "client.p12: wrong password (check the PKCS#12 password)");

  // Decoded with the raw google.rpc types, as any client would.
  google::rpc::Status rich;
  ASSERT_TRUE(rich.ParseFromString(s.error_details()));
  EXPECT_EQ(rich.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(rich.details_size(), 2);
  google::rpc::ErrorInfo info;
  ASSERT_TRUE(rich.details(0).UnpackTo(&info));
  EXPECT_EQ(rich.details(0).type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  EXPECT_EQ(info.reason(), "WRONG_PASSWORD");
  EXPECT_EQ(info.domain(), "wsstep.dev");
  EXPECT_EQ(info.metadata().at("hint"), "check the PKCS#12 password");
  EXPECT_EQ(info.metadata().at("side"), "CONFIGURATION");
  google::rpc::BadRequest bad;
  ASSERT_TRUE(rich.details(1).UnpackTo(&bad));
  ASSERT_EQ(bad.field_violations_size(), 2);
  EXPECT_EQ(bad.field_violations(0).field(), "material.content_name");
  EXPECT_EQ(bad.field_violations(1).field(), "material.password");
  EXPECT_EQ(bad.field_violations(1).description(), "client.p12: wrong password");

  const StatusDetails d = DecodeStatusDetails(s);
  EXPECT_EQ(d.reason, "WRONG_PASSWORD");
  EXPECT_EQ(d.violations.size(), 2u);
}

TEST(StatusMapTest, NotFoundHasNoBadRequest) {
  const grpc::Status s = ToGrpcStatus(Error(Code::kNotFound, "certificate 'x' not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  const StatusDetails d = DecodeStatusDetails(s);
  EXPECT_EQ(d.reason, "NOT_FOUND");
  EXPECT_TRUE(d.violations.empty());
}

}  // namespace
}  // namespace wsstep::plugin
