#include "plugin/adapters/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <exception>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/model.h"
#include "core/notifications.h"
#include "wsstep/v1/step.pb.h"

namespace wsstep::plugin {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::array<StepKind, 2> kKinds = {StepKind::kRest, StepKind::kSoap};

// How a step ended, as the `outcome` label says it.
enum class OutcomeClass { kHttp, kSoap, kSoapFault, kError, kRefused, kCount };
constexpr std::array<std::string_view, static_cast<size_t>(OutcomeClass::kCount)> kOutcomeNames = {
    "http", "soap", "soap_fault", "error", "refused"};

enum class Phase { kConnect, kTls, kFirstByte, kCount };
constexpr std::array<std::string_view, static_cast<size_t>(Phase::kCount)> kPhaseNames = {
    "connect", "tls", "first_byte"};

// Whole steps: from a fast loopback answer to a 60 s timeout.
const prometheus::Histogram::BucketBoundaries kStepBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Phases are shorter: a loopback connect takes tens of microseconds.
const prometheus::Histogram::BucketBoundaries kPhaseBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

const char* const kAdmissionReasons[] = {"max_in_flight_steps", "shutting_down", "deadline_passed",
                                         "invalid_request", "not_available"};

// The codes a step can end with (the call-time catalog, PRODUCT.md §2, and the few
// infrastructure codes a step may meet): their series exist from the start. Any other
// code a step reports gets its series when it first happens.
bool StepTimeCode(int number) {
  return (number >= v1::ERROR_CODE_CERTIFICATE_NOT_FOUND &&
          number <= v1::ERROR_CODE_INVALID_STEP_CONFIG) ||
         number == v1::ERROR_CODE_CANCELLED || number == v1::ERROR_CODE_STORAGE_ERROR ||
         number == v1::ERROR_CODE_INTERNAL;
}

size_t KindIndex(StepKind kind) { return kind == StepKind::kRest ? 0 : 1; }

double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + static_cast<double>(d.nanos()) * 1e-9;
}

// The catalog name of a proto ErrorCode value: ERROR_CODE_CLIENT_CERT_REJECTED ->
// CLIENT_CERT_REJECTED.
std::string CatalogName(const google::protobuf::EnumValueDescriptor& value) {
  constexpr std::string_view kPrefix = "ERROR_CODE_";
  std::string_view name = value.name();
  if (name.substr(0, kPrefix.size()) == kPrefix) name.remove_prefix(kPrefix.size());
  return std::string(name);
}

// The per-step side: every series that a step can touch is created up front (so that
// rate() over a code that never happened yet is 0, not absent) and reached through
// plain pointers; recording is a few atomic adds.
class StepRecorder final : public StepObserver {
 public:
  explicit StepRecorder(prometheus::Registry& registry)
      : steps_(prometheus::BuildCounter()
                   .Name("wsstep_steps_total")
                   .Help("Steps that ended, by kind (rest, soap), outcome (http, soap, "
                         "soap_fault, error, refused) and catalog code (error and refused)")
                   .Register(registry)),
        not_admitted_(prometheus::BuildCounter()
                          .Name("wsstep_steps_not_admitted_total")
                          .Help("Steps the plugin refused before starting them, by reason")
                          .Register(registry)),
        duration_(prometheus::BuildHistogram()
                      .Name("wsstep_step_duration_seconds")
                      .Help("Time from a step's arrival to its result, by kind and outcome")
                      .Register(registry)),
        phases_(prometheus::BuildHistogram()
                    .Name("wsstep_step_phase_seconds")
                    .Help("Phases of a step's last HTTP exchange: connect and tls on new "
                          "connections only, first_byte from the exchange's start to the "
                          "first response byte")
                    .Register(registry)),
        in_flight_(prometheus::BuildGauge()
                       .Name("wsstep_steps_in_flight")
                       .Help("Steps admitted and not finished yet")
                       .Register(registry)
                       .Add({})),
        body_bytes_(prometheus::BuildCounter()
                        .Name("wsstep_response_body_bytes_total")
                        .Help("Response body bytes of REST steps that got an answer, by "
                              "delivery: whole (in the step's result) or chunks (streamed "
                              "on ExecuteSteps)")
                        .Register(registry)),
        whole_bytes_(&body_bytes_.Add({{"delivery", "whole"}})),
        chunked_bytes_(&body_bytes_.Add({{"delivery", "chunks"}})) {
    const auto* codes = v1::ErrorCode_descriptor();
    for (StepKind kind : kKinds) {
      const size_t k = KindIndex(kind);
      const std::string kind_name(StepKindName(kind));
      for (size_t o = 0; o < kOutcomeNames.size(); ++o) {
        const std::string outcome(kOutcomeNames[o]);
        duration_hist_[k][o] =
            &duration_.Add({{"kind", kind_name}, {"outcome", outcome}}, kStepBuckets);
        if (o <= static_cast<size_t>(OutcomeClass::kSoapFault)) {
          results_[k][o] = &steps_.Add({{"kind", kind_name}, {"outcome", outcome}, {"code", ""}});
        }
      }
      for (size_t p = 0; p < kPhaseNames.size(); ++p) {
        phase_hist_[k][p] = &phases_.Add(
            {{"kind", kind_name}, {"phase", std::string(kPhaseNames[p])}}, kPhaseBuckets);
      }
      for (int i = 0; i < codes->value_count(); ++i) {
        const auto* value = codes->value(i);
        if (!StepTimeCode(value->number())) continue;
        errors_[k][value->number()] =
            &steps_.Add({{"kind", kind_name}, {"outcome", "error"}, {"code", CatalogName(*value)}});
      }
      for (const char* reason : kAdmissionReasons) {
        admission_[k][reason] = &not_admitted_.Add({{"kind", kind_name}, {"reason", reason}});
      }
    }
  }

  void Started(StepKind /*kind*/) override { in_flight_.Increment(); }

  void Finished(StepKind kind, const Status& status, const v1::StepOutcome* outcome,
                std::chrono::nanoseconds elapsed) override {
    in_flight_.Decrement();
    const size_t k = KindIndex(kind);
    OutcomeClass cls = OutcomeClass::kRefused;
    if (!status.ok() || outcome == nullptr) {
      RefusedCounter(k, status.ok() ? "INTERNAL" : CodeName(status.error().code)).Increment();
    } else {
      switch (outcome->result_case()) {
        case v1::StepOutcome::kHttp: {
          cls = OutcomeClass::kHttp;
          const v1::HttpResult& http = outcome->http();
          if (http.body_chunked()) {
            chunked_bytes_->Increment(static_cast<double>(http.body_bytes()));
          } else {
            whole_bytes_->Increment(static_cast<double>(http.body().size()));
          }
          break;
        }
        case v1::StepOutcome::kSoap:
          cls = outcome->soap().has_fault() ? OutcomeClass::kSoapFault : OutcomeClass::kSoap;
          break;
        default:
          cls = OutcomeClass::kError;
          break;
      }
      if (cls == OutcomeClass::kError) {
        ErrorCounter(k, *outcome).Increment();
      } else {
        results_[k][static_cast<size_t>(cls)]->Increment();
      }
      ObservePhases(k, outcome->timings());
    }
    duration_hist_[k][static_cast<size_t>(cls)]->Observe(
        std::chrono::duration<double>(elapsed).count());
  }

  void Refused(StepKind kind, std::string_view reason) override {
    const auto& by_reason = admission_[KindIndex(kind)];
    if (auto it = by_reason.find(reason); it != by_reason.end()) it->second->Increment();
  }

 private:
  void ObservePhases(size_t k, const v1::Timings& t) {
    // A reused connection has no connect or TLS phase: observing its zeros would drag
    // the histograms toward nothing.
    if (t.has_connect() && Seconds(t.connect()) > 0) {
      phase_hist_[k][static_cast<size_t>(Phase::kConnect)]->Observe(Seconds(t.connect()));
    }
    if (t.has_tls() && Seconds(t.tls()) > 0) {
      phase_hist_[k][static_cast<size_t>(Phase::kTls)]->Observe(Seconds(t.tls()));
    }
    if (t.has_first_byte() && Seconds(t.first_byte()) > 0) {
      phase_hist_[k][static_cast<size_t>(Phase::kFirstByte)]->Observe(Seconds(t.first_byte()));
    }
  }

  prometheus::Counter& ErrorCounter(size_t k, const v1::StepOutcome& outcome) {
    const auto& by_code = errors_[k];
    if (auto it = by_code.find(outcome.error().error_code()); it != by_code.end()) {
      return *it->second;
    }
    // A code the enum does not know (a newer catalog): its name, created once.
    std::lock_guard<std::mutex> lock(mu_);
    return steps_.Add({{"kind", std::string(StepKindName(kKinds[k]))},
                       {"outcome", "error"},
                       {"code", outcome.error().code()}});
  }

  prometheus::Counter& RefusedCounter(size_t k, std::string_view code) {
    // Refusals are contract errors (a step the host should not have sent): rare, so a
    // lock and a lookup are fine here. Family::Add returns the existing series.
    std::lock_guard<std::mutex> lock(mu_);
    return steps_.Add({{"kind", std::string(StepKindName(kKinds[k]))},
                       {"outcome", "refused"},
                       {"code", std::string(code)}});
  }

  prometheus::Family<prometheus::Counter>& steps_;
  prometheus::Family<prometheus::Counter>& not_admitted_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Histogram>& phases_;
  prometheus::Gauge& in_flight_;
  prometheus::Family<prometheus::Counter>& body_bytes_;
  prometheus::Counter* whole_bytes_;
  prometheus::Counter* chunked_bytes_;
  std::mutex mu_;  // Family::Add of series not created up front

  std::array<std::array<prometheus::Counter*, 3>, 2> results_{};  // http, soap, soap_fault
  std::array<std::unordered_map<int, prometheus::Counter*>, 2> errors_;
  std::array<std::map<std::string, prometheus::Counter*, std::less<>>, 2> admission_;
  std::array<std::array<prometheus::Histogram*, kOutcomeNames.size()>, 2> duration_hist_{};
  std::array<std::array<prometheus::Histogram*, kPhaseNames.size()>, 2> phase_hist_{};
};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric Sample(std::vector<ClientMetric::Label> labels, double value, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

// The scrape-time side: what the store holds now, and what the engine counted.
class InventoryCollector final : public prometheus::Collectable {
 public:
  InventoryCollector(std::shared_ptr<core::CertificateStore> store,
                     std::shared_ptr<Transfers> transfers)
      : store_(std::move(store)), transfers_(std::move(transfers)) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out;
    const auto snapshot = store_->snapshot();
    const core::UnixSeconds now = store_->Now();
    CollectEntries(*snapshot, now, out);

    auto due = Family("wsstep_notifications_due",
                      "Expiry notifications due now and not acknowledged (the host sends them)",
                      MetricType::Gauge);
    due.metric.push_back(
        Sample({}, static_cast<double>(store_->DueNotifications().size()), MetricType::Gauge));
    out.push_back(std::move(due));

    if (transfers_) CollectConnections(*snapshot, out);
    return out;
  }

 private:
  static void CollectEntries(const core::Snapshot& snapshot, core::UnixSeconds now,
                             std::vector<MetricFamily>& out) {
    constexpr core::CertStatus kStatuses[] = {core::CertStatus::kValid,
                                              core::CertStatus::kExpiringSoon,
                                              core::CertStatus::kExpired,
                                              core::CertStatus::kNotYetValid,
                                              core::CertStatus::kRevoked,
                                              core::CertStatus::kDisabled,
                                              core::CertStatus::kPendingCertificate};
    std::map<core::CertStatus, int> by_status;
    auto info = Family("wsstep_certificate_info",
                       "One series per store entry, value 1: its name, type and status now",
                       MetricType::Gauge);
    auto expiry = Family("wsstep_certificate_expiry_seconds",
                         "Seconds until the entry's governing certificate expires (negative "
                         "once expired); entries without a certificate have none",
                         MetricType::Gauge);
    auto bindings = Family("wsstep_certificate_binding_info",
                           "One series per binding of a store entry, value 1", MetricType::Gauge);
    for (const auto& shared : snapshot.entries()) {
      const core::EntryMetadata& e = *shared;
      const core::CertStatus status = core::StatusAt(e, now);
      ++by_status[status];
      info.metric.push_back(Sample({{"entry", e.name},
                                    {"status", std::string(core::CertStatusName(status))},
                                    {"type", std::string(core::EntryTypeName(e.type))}},
                                   1, MetricType::Gauge));
      if (const auto window = core::GoverningWindow(e)) {
        expiry.metric.push_back(Sample(
            {{"entry", e.name}}, static_cast<double>(window->not_after - now), MetricType::Gauge));
      }
      for (const core::Binding& b : e.bindings) {
        bindings.metric.push_back(Sample({{"binding", b.host + ":" + std::to_string(b.port)},
                                          {"entry", e.name},
                                          {"environment", b.environment}},
                                         1, MetricType::Gauge));
      }
    }
    auto count = Family("wsstep_certificates", "Store entries by status", MetricType::Gauge);
    for (core::CertStatus s : kStatuses) {
      count.metric.push_back(Sample({{"status", std::string(core::CertStatusName(s))}},
                                    by_status[s], MetricType::Gauge));
    }
    out.push_back(std::move(count));
    out.push_back(std::move(info));
    out.push_back(std::move(expiry));
    out.push_back(std::move(bindings));
  }

  void CollectConnections(const core::Snapshot& snapshot, std::vector<MetricFamily>& out) const {
    auto opened = Family("wsstep_connections_opened_total",
                         "New connections, by the store entry whose client certificate they "
                         "present (entry=\"\": none)",
                         MetricType::Counter);
    auto reused = Family("wsstep_connection_reuses_total",
                         "HTTP requests sent over a kept-alive connection, by store entry",
                         MetricType::Counter);
    auto handshakes = Family("wsstep_tls_handshakes_total",
                             "TLS handshakes of new connections, full or resumed, by store entry",
                             MetricType::Counter);
    auto requests = Family("wsstep_http_requests_total",
                           "HTTP requests sent (redirect hops and token calls included), by "
                           "store entry",
                           MetricType::Counter);
    // An entry deleted since keeps its counts under its id: counters never go back.
    for (const rest::PartitionStats& s : ConnectionTotals(*transfers_)) {
      std::string entry;
      if (!s.identity_entry_id.empty()) {
        const core::EntryMetadata* e = snapshot.FindById(s.identity_entry_id);
        entry = e != nullptr ? e->name : s.identity_entry_id;
      }
      const auto c = MetricType::Counter;
      opened.metric.push_back(Sample({{"entry", entry}}, s.new_connections, c));
      reused.metric.push_back(Sample({{"entry", entry}}, s.reused_connections, c));
      requests.metric.push_back(Sample({{"entry", entry}}, s.requests, c));
      handshakes.metric.push_back(
          Sample({{"entry", entry}, {"handshake", "full"}}, s.full_handshakes, c));
      handshakes.metric.push_back(
          Sample({{"entry", entry}, {"handshake", "resumed"}}, s.resumed_sessions, c));
    }
    out.push_back(std::move(opened));
    out.push_back(std::move(reused));
    out.push_back(std::move(handshakes));
    out.push_back(std::move(requests));
  }

  std::shared_ptr<core::CertificateStore> store_;
  std::shared_ptr<Transfers> transfers_;
};

}  // namespace

struct PluginMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<StepRecorder> recorder;
  std::shared_ptr<InventoryCollector> inventory;
};

PluginMetrics::PluginMetrics(std::shared_ptr<core::CertificateStore> store,
                             std::shared_ptr<Transfers> transfers)
    : impl_(std::make_unique<Impl>()) {
  prometheus::BuildGauge()
      .Name("wsstep_build_info")
      .Help("The running plugin's version, value 1")
      .Register(*impl_->registry)
      .Add({{"version", std::string(PluginVersion())}})
      .Set(1);
  impl_->recorder = std::make_shared<StepRecorder>(*impl_->registry);
  impl_->inventory = std::make_shared<InventoryCollector>(std::move(store), std::move(transfers));
}

PluginMetrics::~PluginMetrics() = default;

std::shared_ptr<StepObserver> PluginMetrics::observer() const { return impl_->recorder; }

std::string PluginMetrics::Text() const {
  std::vector<MetricFamily> families = impl_->registry->Collect();
  std::vector<MetricFamily> inventory = impl_->inventory->Collect();
  families.insert(families.end(), std::make_move_iterator(inventory.begin()),
                  std::make_move_iterator(inventory.end()));
  return prometheus::TextSerializer().Serialize(families);
}

struct MetricsEndpoint::Impl {
  std::shared_ptr<PluginMetrics> metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
};

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const ListenAddress& address, bool allow_remote, std::shared_ptr<PluginMetrics> metrics) {
  WSSTEP_RETURN_IF_ERROR(CheckListenPolicy(address, allow_remote));
  std::string host = address.host == "localhost" ? "127.0.0.1" : address.host;
  const bool v6 = host.find(':') != std::string::npos;
  const std::string bind = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(address.port);
  auto impl = std::make_unique<Impl>();
  impl->metrics = std::move(metrics);
  try {
    impl->exposer = std::make_unique<prometheus::Exposer>(bind, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return Error(Code::kInvalidArgument,
                 "cannot serve metrics on " + address.Display() + ": " + e.what(),
                 "choose a free port, or another loopback address", Side::kConfiguration);
  }
  impl->exposer->RegisterCollectable(impl->metrics->impl_->registry);
  impl->exposer->RegisterCollectable(impl->metrics->impl_->inventory);
  const std::vector<int> ports = impl->exposer->GetListeningPorts();
  const int port = ports.empty() ? address.port : ports.front();
  return std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint(std::move(impl), host, port));
}

MetricsEndpoint::MetricsEndpoint(std::unique_ptr<Impl> impl, std::string host, int port)
    : impl_(std::move(impl)), host_(std::move(host)), port_(port) {}

MetricsEndpoint::~MetricsEndpoint() = default;

std::string MetricsEndpoint::url() const {
  const bool v6 = host_.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_) + "/metrics";
}

}  // namespace wsstep::plugin
