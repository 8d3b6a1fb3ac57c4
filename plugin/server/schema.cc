#include "plugin/server/schema.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "proto/descriptor_set.h"
#include "wsstep/v1/options.pb.h"

namespace wsstep::plugin {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using Json = nlohmann::ordered_json;

// A pool built from the embedded descriptor set: same types as the generated pool, plus
// the comments. Built once.
const google::protobuf::DescriptorPool* CommentPool() {
  static const google::protobuf::DescriptorPool* pool = [] {
    auto* p = new google::protobuf::DescriptorPool();
    google::protobuf::FileDescriptorSet set;
    const std::string_view bytes = wsstep::proto::DescriptorSetBytes();
    if (!set.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return p;
    // --include_imports lists dependencies first, so files build in order.
    for (const auto& file : set.file()) p->BuildFile(file);
    return p;
  }();
  return pool;
}

std::string CleanComment(std::string text) {
  // Proto comments keep their leading space per line; fold into one paragraph-preserving
  // string without the indentation.
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && c == ' ') continue;
    line_start = c == '\n';
    out.push_back(c);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

template <typename D>
std::string CommentOf(const D* in_pool) {
  if (in_pool == nullptr) return "";
  google::protobuf::SourceLocation loc;
  if (!in_pool->GetSourceLocation(&loc)) return "";
  return CleanComment(loc.leading_comments);
}

std::string MessageComment(const Descriptor* d) {
  return CommentOf(CommentPool()->FindMessageTypeByName(d->full_name()));
}
std::string FieldComment(const FieldDescriptor* f) {
  return CommentOf(CommentPool()->FindFieldByName(f->full_name()));
}

class SchemaBuilder {
 public:
  Json Build(const Descriptor* root) {
    Json schema = Json::object();
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema";
    schema["$id"] = "urn:wsstep:schema:" + root->full_name();
    schema["title"] = root->full_name();
    if (std::string c = MessageComment(root); !c.empty()) schema["description"] = c;
    schema["$ref"] = Ref(root);
    Define(root);
    schema["$defs"] = defs_;
    return schema;
  }

 private:
  static std::string Ref(const Descriptor* d) { return "#/$defs/" + d->full_name(); }

  // Schemas of well-known types, which have their own JSON forms; null if `d` is not one.
  static Json WellKnown(const Descriptor* d) {
    const std::string& n = d->full_name();
    if (n == "google.protobuf.Duration") {
      return {{"type", "string"}, {"pattern", "^-?[0-9]+(\\.[0-9]{1,9})?s$"}};
    }
    if (n == "google.protobuf.Timestamp") return {{"type", "string"}, {"format", "date-time"}};
    if (n == "google.protobuf.FieldMask") return {{"type", "string"}};
    if (n == "google.protobuf.BoolValue") return {{"type", "boolean"}};
    if (n == "google.protobuf.StringValue") return {{"type", "string"}};
    if (n == "google.protobuf.BytesValue") {
      return {{"type", "string"}, {"contentEncoding", "base64"}};
    }
    if (n == "google.protobuf.Int32Value" || n == "google.protobuf.UInt32Value") {
      return {{"type", "integer"}};
    }
    if (n == "google.protobuf.Int64Value" || n == "google.protobuf.UInt64Value") {
      return {{"type", Json::array({"integer", "string"})}, {"pattern", "^-?[0-9]+$"}};
    }
    if (n == "google.protobuf.DoubleValue" || n == "google.protobuf.FloatValue") {
      return {{"type", "number"}};
    }
    if (n == "google.protobuf.Struct") return {{"type", "object"}};
    if (n == "google.protobuf.Empty") return {{"type", "object"}, {"maxProperties", 0}};
    if (d->file()->package() == "google.protobuf") return Json::object();  // Value, Any...
    return nullptr;
  }

  Json Scalar(const FieldDescriptor* f) {
    switch (f->type()) {
      case FieldDescriptor::TYPE_STRING:
        return {{"type", "string"}};
      case FieldDescriptor::TYPE_BYTES:
        return {{"type", "string"}, {"contentEncoding", "base64"}};
      case FieldDescriptor::TYPE_BOOL:
        return {{"type", "boolean"}};
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        return {{"type", "integer"}};
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32:
        return {{"type", "integer"}, {"minimum", 0}};
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64:
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64:
        // proto3 JSON writes 64-bit integers as strings and reads either.
        return {{"type", Json::array({"integer", "string"})}, {"pattern", "^-?[0-9]+$"}};
      case FieldDescriptor::TYPE_DOUBLE:
      case FieldDescriptor::TYPE_FLOAT:
        return {{"type", "number"}};
      case FieldDescriptor::TYPE_ENUM: {
        Json names = Json::array();
        for (int i = 0; i < f->enum_type()->value_count(); ++i) {
          names.push_back(f->enum_type()->value(i)->name());
        }
        return {{"type", "string"}, {"enum", names}};
      }
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP: {
        const Descriptor* m = f->message_type();
        if (Json wk = WellKnown(m); !wk.is_null()) return wk;
        Define(m);
        return {{"$ref", Ref(m)}};
      }
    }
    return Json::object();
  }

  Json FieldSchema(const FieldDescriptor* f) {
    Json s;
    if (f->is_map()) {
      s = {{"type", "object"},
           {"additionalProperties", Scalar(f->message_type()->map_value())}};
    } else if (f->is_repeated()) {
      s = {{"type", "array"}, {"items", Scalar(f)}};
    } else {
      s = Scalar(f);
    }
    // A $ref with siblings is fine in 2020-12.
    if (std::string c = FieldComment(f); !c.empty()) s["description"] = c;
    if (f->options().GetExtension(wsstep::v1::secret)) s["writeOnly"] = true;
    return s;
  }

  void Define(const Descriptor* d) {
    if (!defined_.insert(d->full_name()).second) return;
    Json props = Json::object();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      props[f->json_name()] = FieldSchema(f);
    }
    Json def = Json::object();
    def["type"] = "object";
    if (std::string c = MessageComment(d); !c.empty()) def["description"] = c;
    def["properties"] = props;
    def["additionalProperties"] = false;
    // Each oneof: exactly one member alone, or none at all.
    Json all_of = Json::array();
    for (int i = 0; i < d->oneof_decl_count(); ++i) {
      const auto* oneof = d->oneof_decl(i);
      if (oneof->is_synthetic()) continue;  // proto3 `optional`, not a real choice
      Json choices = Json::array();
      Json any = Json::array();
      for (int k = 0; k < oneof->field_count(); ++k) {
        Json req = Json::object();
        req["required"] = Json::array();
        req["required"].push_back(oneof->field(k)->json_name());
        choices.push_back(req);
        any.push_back(req);
      }
      Json none = Json::object();
      none["not"]["anyOf"] = any;
      choices.push_back(none);
      Json one_of = Json::object();
      one_of["oneOf"] = choices;
      all_of.push_back(one_of);
    }
    if (!all_of.empty()) def["allOf"] = all_of;
    defs_[d->full_name()] = def;
  }

  Json defs_ = Json::object();
  std::set<std::string> defined_;
};

}  // namespace

std::string StepConfigSchema(const google::protobuf::Descriptor* message) {
  return SchemaBuilder().Build(message).dump();
}

}  // namespace wsstep::plugin
