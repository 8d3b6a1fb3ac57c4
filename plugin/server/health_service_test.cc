// grpc.health.v1: Check and Watch, through the shutdown.
#include "plugin/server/health_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "plugin/process/listen.h"

namespace wsstep::plugin {
namespace {

TEST(HealthServiceTest, WatchSeesAChangeAndTheShutdownThenEnds) {
  const std::string dir = *MakePrivateTempDir("");
  const std::string address = "unix://" + dir + "/h.sock";
  HealthService service;
  service.Set("plugin", true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("plugin");
  auto watch = stub->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse seen;
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  service.Set("plugin", false);
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  service.Set("plugin", true);
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  service.Shutdown();
  ASSERT_TRUE(watch->Read(&seen));
  EXPECT_EQ(seen.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&seen));
  EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  service.Set("plugin", true);  // ignored after Shutdown
  {
    grpc::ClientContext check_ctx;
    grpc::health::v1::HealthCheckResponse check;
    ASSERT_TRUE(stub->Check(&check_ctx, req, &check).ok());
    EXPECT_EQ(check.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  }
  server->Shutdown();
  ::unlink((dir + "/h.sock").c_str());
  ::rmdir(dir.c_str());
}

}  // namespace
}  // namespace wsstep::plugin
