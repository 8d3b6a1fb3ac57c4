#include "plugin/cli/store_commands.h"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/db.h"
#include "core/store/pg_storage.h"
#include "core/store/sqlite_storage.h"
#include "core/store/store_copy.h"

namespace wsstep::plugin {
namespace {

struct CopyFlags {
  std::string from;
  std::string to;
  bool into_non_empty = false;
};

// A store named on the command line: a PostgreSQL connection string, or a data directory
// (created when it is the target and does not exist yet).
Result<std::unique_ptr<core::Storage>> OpenNamedStore(const std::string& where, bool target) {
  if (core::IsPostgresConnectionString(where)) {
    return core::PostgresStorageFactory(where)({"", false});
  }
  if (target) WSSTEP_RETURN_IF_ERROR(core::EnsurePrivateDirectory(where));
  // Writable, and so locked: a data directory a plugin still serves is refused.
  return core::OpenSqliteStorage({where, false});
}

int ReportCopyError(bool json, const Error& e) {
  if (json) {
    nlohmann::ordered_json j;
    j["error"] = {{"code", CodeName(e.code)}, {"message", e.message}, {"hint", e.hint}};
    std::cout << j.dump(2) << std::endl;
  } else {
    std::cerr << "wsstep: store copy: " << CodeName(e.code) << ": " << e.message << "\n";
    if (!e.hint.empty()) std::cerr << "  " << e.hint << "\n";
  }
  return kExitRefused;
}

int RunCopy(const CopyFlags& flags, bool json) {
  if (flags.from == flags.to) return UsageError("store copy: --from and --to name the same store");
  auto from = OpenNamedStore(flags.from, false);
  if (!from.ok()) return ReportCopyError(json, from.error());
  auto to = OpenNamedStore(flags.to, true);
  if (!to.ok()) return ReportCopyError(json, to.error());
  core::StoreCopyOptions options;
  options.into_non_empty = flags.into_non_empty;
  auto copied = core::CopyStore(**from, **to, options);
  if (!copied.ok()) return ReportCopyError(json, copied.error());
  const std::string from_at = (*from)->location();
  const std::string to_at = (*to)->location();
  if (json) {
    nlohmann::ordered_json j;
    j["from"] = from_at;
    j["to"] = to_at;
    j["entries"] = copied->entries;
    j["private_keys"] = copied->private_keys;
    j["audit_events"] = copied->audit_events;
    j["proxy_credentials"] = copied->proxy_credentials;
    j["master_key_id"] = copied->master_key_id;
    std::cout << j.dump(2) << std::endl;
    return kExitOk;
  }
  std::cout << "copied " << copied->entries << " entries (" << copied->private_keys
            << " private keys, still sealed), " << copied->proxy_credentials
            << " proxy credentials (still sealed) and " << copied->audit_events
            << " audit events\n  from " << from_at << "\n  to   " << to_at << "\n";
  if (!copied->master_key_id.empty()) {
    std::cout << "every plugin on the target needs master key " << copied->master_key_id
              << " (the source's key file or WSSTEP_MASTER_KEY)\n";
  }
  return kExitOk;
}

}  // namespace

void AddStoreCommands(CLI::App& app, CommandLine& line) {
  auto* store = app.add_subcommand("store", "work on a store's storage directly (no plugin)");
  store->require_subcommand(1);
  auto flags = std::make_shared<CopyFlags>();
  auto* copy = store->add_subcommand(
      "copy",
      "copy a whole store (entries, sealed keys, audit log, notification state) into "
      "another, e.g. a data directory into PostgreSQL; keys stay sealed");
  copy->add_option("--from", flags->from, "source: a data directory or a PostgreSQL URL")
      ->required();
  copy->add_option("--to", flags->to, "target: a PostgreSQL URL or a data directory")->required();
  copy->add_flag("--into-non-empty", flags->into_non_empty,
                 "add to a target that already holds entries (same master key)");
  copy->callback(
      [&line, flags] { line.run = [&line, flags] { return RunCopy(*flags, line.global.json); }; });
}

}  // namespace wsstep::plugin
