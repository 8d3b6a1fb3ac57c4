// Every command the README and the guides show in their shell blocks, checked against
// the real binary and the real tree:
//   - each `wsstep ...` / `build/plugin/wsstep ...` command is one this binary accepts:
//     its subcommands and flags parse (WSSTEP_CHECK_COMMAND_LINE=1 parses and runs
//     nothing), so a renamed flag or command cannot stay in the docs;
//   - each `scripts/...` command names a script that exists and is valid bash;
//   - the Python host README's commands run as written, from the top of the tree.
// The commands that act on a store run for real in cli_test / cli_admin_test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/e2e/e2e_util.h"
#include "tests/support/process.h"

namespace wsstep::e2e {
namespace {

using ::testing::HasSubstr;

std::string SourceDir() {
  const char* dir = std::getenv("WSSTEP_SOURCE_DIR");
  return dir != nullptr ? dir : ".";
}

struct ShownCommand {
  std::string file;
  std::string line;  // continuation lines joined, comments dropped
};

// The commands in ```sh / ```bash / ``` blocks of a Markdown file.
std::vector<ShownCommand> ShellCommands(const std::string& rel) {
  std::ifstream in(SourceDir() + "/" + rel);
  EXPECT_TRUE(in) << rel;
  std::vector<ShownCommand> out;
  bool in_block = false, shell = false;
  std::string line, pending;
  while (std::getline(in, line)) {
    if (line.starts_with("```")) {
      const std::string lang = line.substr(3);
      shell = !in_block && (lang == "sh" || lang == "bash" || lang == "shell" || lang.empty());
      in_block = !in_block;
      pending.clear();
      continue;
    }
    if (!in_block || !shell) continue;
    const size_t start = line.find_first_not_of(' ');
    if (start == std::string::npos) continue;
    pending += (pending.empty() ? "" : " ") + line.substr(start);
    if (pending.ends_with("\\")) {
      pending.pop_back();
      continue;
    }
    // A comment after the command ("cmd   # why") is prose.
    static const std::regex comment("\\s+#\\s.*$");
    out.push_back({rel, std::regex_replace(pending, comment, "")});
    pending.clear();
  }
  return out;
}

std::vector<std::string> Documents() {
  return {"README.md",
          "docs/administrator-guide.md",
          "docs/designer-guide.md",
          "docs/host-integration.md",
          "docs/operations.md",
          "docs/troubleshooting.md",
          "docs/examples/python_host/README.md"};
}

// Splits a shell line into words the way sh does for these simple lines: quotes group,
// `VAR=value` prefixes are dropped, $PWD is the tree.
std::vector<std::string> Words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  char quote = 0;
  bool any = false;
  for (char c : line) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      any = true;
    } else if (c == ' ') {
      if (any || !word.empty()) words.push_back(word);
      word.clear();
      any = false;
    } else {
      word += c;
    }
  }
  if (any || !word.empty()) words.push_back(word);
  while (!words.empty() && std::regex_match(words.front(), std::regex("[A-Z_]+=.*"))) {
    words.erase(words.begin());
  }
  for (auto& w : words) {
    const size_t at = w.find("$PWD");
    if (at != std::string::npos) w.replace(at, 4, SourceDir());
  }
  return words;
}

TEST(DocsCommandsTest, EveryWsstepCommandShownIsOneTheBinaryAccepts) {
  int checked = 0;
  for (const auto& doc : Documents()) {
    for (const auto& shown : ShellCommands(doc)) {
      auto words = Words(shown.line);
      if (words.empty()) continue;
      if (words[0] != "wsstep" && words[0] != "build/plugin/wsstep") continue;
      words[0] = WSSTEP_BINARY;
      auto r = testing::RunCommand(words, {{"WSSTEP_CHECK_COMMAND_LINE", "1"}});
      EXPECT_EQ(r.exit_code, 0) << shown.file << ": `" << shown.line << "`\n" << r.output;
      ++checked;
    }
  }
  // The guides show dozens; a parser that found none would pass vacuously.
  EXPECT_GE(checked, 35);
}

TEST(DocsCommandsTest, EveryScriptShownExistsAndIsValidBash) {
  int checked = 0;
  for (const auto& doc : Documents()) {
    for (const auto& shown : ShellCommands(doc)) {
      auto words = Words(shown.line);
      if (words.empty() || !words[0].starts_with("scripts/")) continue;
      auto r = testing::RunCommand({"bash", "-n", SourceDir() + "/" + words[0]});
      EXPECT_EQ(r.exit_code, 0) << shown.file << ": `" << shown.line << "`\n" << r.output;
      ++checked;
    }
  }
  EXPECT_GE(checked, 6);
}

// The Python host README, as written, from the top of the tree: with a fresh store, and
// pointed at an existing data directory.
TEST(DocsCommandsTest, ThePythonHostReadmeRunsAsWritten) {
  if (testing::RunCommand({"/usr/bin/python3", "-c", "import grpc, grpc_tools"}).exit_code != 0) {
    GTEST_SKIP() << "python3-grpcio / python3-grpc-tools are not installed (scripts/deps.sh)";
  }
  testing::TempDir data("wsstep-docs-python-");
  // An existing data directory: a store made by `wsstep serve` with one entry in it.
  {
    testing::ChildProcess server;
    const std::string socket = StartServeForCli(server, data);
    ASSERT_FALSE(socket.empty());
    server.Stop(SIGTERM, std::chrono::seconds(20));
  }
  int ran = 0;
  for (const auto& shown : ShellCommands("docs/examples/python_host/README.md")) {
    if (shown.line.find("host.py") == std::string::npos) continue;
    std::string line = shown.line;
    // As written, except where the tree's build directory and data directory are.
    line = std::regex_replace(line, std::regex("build/plugin/wsstep"), WSSTEP_BINARY);
    line = std::regex_replace(line, std::regex("\\$PWD/data"), data.Path("data"));
    auto r = testing::RunCommand({"bash", "-c", "cd '" + SourceDir() + "' && " + line}, {},
                                 std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << "`" << shown.line << "`\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("SERVING")) << shown.line;
    ++ran;
  }
  EXPECT_EQ(ran, 3);
}

}  // namespace
}  // namespace wsstep::e2e
