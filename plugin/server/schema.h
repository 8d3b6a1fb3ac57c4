// JSON Schemas of step configurations, generated from the proto descriptors so they can
// never drift from the API. GetPluginInfo publishes one per step kind; a host's designer
// UI can validate a configuration (in the proto3 JSON mapping) before sending it.
//
//   std::string schema = StepConfigSchema(v1::RestStep::descriptor());
//
// The schema (draft 2020-12) has every message type under "$defs" (recursive types such
// as XmlElement work by $ref), lowerCamelCase property names, enums as their names,
// 64-bit integers as integer-or-string, bytes as base64 strings, Duration as "1.5s",
// Timestamp as date-time, wrappers as their scalar. A oneof allows at most one member.
// Fields annotated (wsstep.v1.secret) are "writeOnly". Descriptions are the proto
// comments (from proto/descriptor_set.h).
#ifndef WSSTEP_PLUGIN_SERVER_SCHEMA_H_
#define WSSTEP_PLUGIN_SERVER_SCHEMA_H_

#include <string>

namespace google::protobuf {
class Descriptor;
}

namespace wsstep::plugin {

// The schema as compact JSON text.
std::string StepConfigSchema(const google::protobuf::Descriptor* message);

}  // namespace wsstep::plugin

#endif  // WSSTEP_PLUGIN_SERVER_SCHEMA_H_
