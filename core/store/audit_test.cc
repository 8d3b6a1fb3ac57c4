#include "core/store/audit.h"

#include <gtest/gtest.h>

namespace wsstep::core {
namespace {

TEST(AuditTest, ActionNamesRoundTrip) {
  for (AuditAction a : {AuditAction::kCreate, AuditAction::kUpdate, AuditAction::kDelete,
                        AuditAction::kImportFailure, AuditAction::kUse, AuditAction::kGenerateKey,
                        AuditAction::kAttachCertificate, AuditAction::kRotateMasterKey}) {
    EXPECT_EQ(AuditActionFromName(AuditActionName(a)), a);
  }
  EXPECT_EQ(AuditActionName(AuditAction::kImportFailure), "IMPORT_FAILURE");
  EXPECT_FALSE(AuditActionFromName("use").has_value());  // names are exact
}

TEST(AuditTest, EntryEventsCarryTheContext) {
  EntryMetadata e;
  e.id = "id1";
  e.name = "bank";
  AuditEvent ev = EntryAuditEvent(AuditAction::kUpdate, {"alice", "step-1", "wf-1"}, e, "name", 42);
  EXPECT_EQ(ev.action, AuditAction::kUpdate);
  EXPECT_EQ(ev.actor, "alice");
  EXPECT_EQ(ev.step_id, "step-1");
  EXPECT_EQ(ev.workflow_id, "wf-1");
  EXPECT_EQ(ev.entry_id, "id1");
  EXPECT_EQ(ev.entry_name, "bank");
  EXPECT_EQ(ev.outcome, "OK");
  EXPECT_EQ(ev.detail, "name");
  EXPECT_EQ(ev.at, 42);
}

TEST(AuditTest, PageTokensAreTheSequenceToStartBelow) {
  AuditEvent last;
  last.sequence = 1234;
  EXPECT_EQ(AuditPageStart(AuditPageToken(last)).value(), 1234);
  EXPECT_EQ(AuditPageStart("").value(), 0);
  for (std::string_view bad : {"abc", "0", "-5", "12x", "99999999999999999999"}) {
    auto r = AuditPageStart(bad);
    ASSERT_EQ(r.code(), Code::kInvalidArgument) << bad;
    EXPECT_EQ(r.error().detail.at("field"), "page_token");
  }
}

}  // namespace
}  // namespace wsstep::core
