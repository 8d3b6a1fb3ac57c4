// `wsstep cert ...`, `wsstep notifications ...`, `wsstep master-key ...`: the
// administrator's view of the store, through the plugin's CertificateService.
//   cert_commands.cc        import, list, show, delete, resolve, and what they share
//   cert_admin_commands.cc  update, disable, enable, revoke, export, csr, attach, audit,
//                           usage; notifications list|ack; master-key rotate
//   proxy_credential_commands.cc  proxy-credential set, list, delete
#ifndef WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_
#define WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plugin/cli/command.h"

namespace wsstep::plugin {

// Registers `cert` and its subcommands; the parsed one sets line.run.
void AddCertCommands(CLI::App& app, CommandLine& line);
// The subcommands of cert_admin_commands.cc, under `cert`.
void AddCertAdminCommands(CLI::App* cert, CommandLine& line);
// `notifications list|ack` and `master-key rotate`.
void AddNotificationCommands(CLI::App& app, CommandLine& line);
void AddMasterKeyCommands(CLI::App& app, CommandLine& line);
// `proxy-credential set|list|delete` (proxy_credential_commands.cc).
void AddProxyCredentialCommands(CLI::App& app, CommandLine& line);

// --bind values into `out`; on a bad one reports it (usage) and returns the exit code.
std::optional<int> AddBindings(const std::vector<std::string>& texts,
                               google::protobuf::RepeatedPtrField<v1::Binding>* out);

// An entry's metadata, one fact a line.
void PrintCertificate(const v1::Certificate& c);

// An enum value as a person types it ("pkcs12", "PKCS12", "trust-store", "TRUST_STORE",
// "Expiring-Soon") in the spelling of the proto's names: upper case, '_' between words.
std::string EnumKey(std::string_view text);

// The bytes of a file given to `flag` for an upload. Refused, naming the flag and the
// path: a missing file, a directory, an empty file, and a file too large for the
// plugin's message limit `max_bytes` (said in MiB, before anything is sent).
Result<std::string> ReadUploadFile(const std::string& path, std::string_view flag,
                                   int64_t max_bytes);

// The upload flags of `cert import` and `cert update`: the file(s) and what opens them.
struct MaterialFlags {
  std::string file, key_file, format, alias;
  std::string password_file, password_env, key_password_file, key_password_env;
  bool password_stdin = false;

  void Add(CLI::App* cmd, bool file_required);
  // Connects (for the plugin's limit), reads the files and secrets into `m`; on failure
  // reports it and returns the exit code.
  std::optional<int> Fill(Client& client, v1::CertificateMaterial* m) const;
};

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_CLI_CERT_COMMANDS_H_
