// The certificate store's share of §5: per-call cost of identities imported from PKCS#12
// and JKS against the same identity from PEM (no per-call PBKDF2), and a store of
// 100,000 certificates (startup, resolve latency, resident memory).
//
// The 100k measurement runs in a child process of its own (`wsstep_bench store-generate`
// then `wsstep_bench store-measure`), so that resident memory is the store's and not the
// rest of the benchmark's. Both print "key=value" lines on stdout.
#ifndef WSSTEP_TESTS_BENCH_STORE_BENCH_H_
#define WSSTEP_TESTS_BENCH_STORE_BENCH_H_

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "rest/engine.h"
#include "tests/bench/baselines.h"
#include "tests/bench/stats.h"

namespace wsstep::bench {

// ---------------------------------------------------------------- identity formats
struct FormatsOptions {
  std::string work_dir;        // a store and converted key stores are created here
  uint16_t origin_port = 0;    // nginx mTLS origin on 127.0.0.1
  std::string path = "/bench";
  TlsFiles pem;                // the identity as PEM + the trust bundle
  // The leaf + intermediate as PEM (with pem.key_file): the same material the PKCS#12 and
  // the JKS carry, so that only the container differs.
  std::string pem_chain_file;
  std::string p12_file;        // the same identity as PKCS#12 (p12/rsa-modern.p12)
  std::string p12_password;
  // A ready-made JKS to use instead of converting the PEM identity with keytool (which
  // takes seconds): the smoke run uses the PKI's jks/client.jks, another identity.
  std::string jks_file;
  std::string jks_store_password;
  std::string jks_key_password;
  int rounds = 10;             // formats take turns, `calls_per_round` calls each
  int calls_per_round = 200;
  int resolves = 20'000;       // ResolveForCall-only timings per format
};

struct FormatCost {
  std::string format;       // "PEM", "PKCS#12", "JKS"
  std::string source;       // what was imported
  double import_ms = 0;     // CertificateStore::Create (parsing, PBKDF2, sealing, SQL)
  double first_call_us = 0; // the first step: the Identity is built (decrypt + parse)
  Throughput call;          // ResolveForCall + engine Execute, keep-alive, per call
  Throughput resolve;       // ResolveForCall alone
};

struct FormatsResult {
  std::string error;  // "" when every format was measured
  std::vector<FormatCost> formats;  // PEM first
  std::string note;
};

FormatsResult RunFormatsBench(rest::RestEngine& engine, const FormatsOptions& options);

// ---------------------------------------------------------------- 100,000 entries
struct StoreScaleOptions {
  std::string data_dir;      // cached between runs (a marker file records what is there)
  std::string cert_file;     // one certificate + key reused for every entry
  std::string key_file;
  size_t entries = 100'000;
  size_t batch = 1'000;      // entries per CreateMany transaction
  size_t lookups = 300'000;  // timed resolutions
  size_t hot_hosts = 1'000;  // ResolveForCall working set
  int reopens = 3;           // Open() timings after the first
  // store-measure and the cluster children: the store in this PostgreSQL database (its
  // master key still in data_dir); empty: SQLite in data_dir.
  std::string store;
  size_t imports = 1'000;   // cluster-measure: entries imported, per backend
  size_t changes = 200;     // cluster-measure: changes timed from one node to the other
};

// Child-process entry points: print "key=value" lines, return the exit code.
int StoreGenerateMain(const StoreScaleOptions& options);
int StoreMeasureMain(const StoreScaleOptions& options);
// Only the process's first Open, with the same first_open_* / rss_* / heap_* lines as
// store-measure: the child to profile startup with (tests/bench/README.md, "Profiling").
int StoreOpenMain(const StoreScaleOptions& options);
// Several plugins on one PostgreSQL database (PRODUCT.md §1, issue 14): `cluster-load`
// copies the generated store in data_dir into options.store (wsstep store copy);
// `cluster-measure` times imports into PostgreSQL against SQLite, and how long a change
// made through one store takes to reach another store on the same database.
int ClusterLoadMain(const StoreScaleOptions& options);
int ClusterMeasureMain(const StoreScaleOptions& options);

// "key=value" lines into a map (the parent's side).
std::map<std::string, std::string> ParseKeyValues(const std::string& text);

}  // namespace wsstep::bench

#endif  // WSSTEP_TESTS_BENCH_STORE_BENCH_H_
