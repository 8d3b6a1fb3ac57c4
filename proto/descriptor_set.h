// The wsstep API's descriptors *with their comments*: a FileDescriptorSet (protoc
// --include_source_info --include_imports) compiled into wsstep_proto. The generated C++
// descriptors drop comments; tools that document the API at run time (the JSON Schemas of
// GetPluginInfo) read them from here.
#ifndef WSSTEP_PROTO_DESCRIPTOR_SET_H_
#define WSSTEP_PROTO_DESCRIPTOR_SET_H_

#include <cstddef>
#include <string_view>

namespace wsstep::proto {

extern const unsigned char kDescriptorSet[];
extern const size_t kDescriptorSet_size;

// The serialized google.protobuf.FileDescriptorSet.
inline std::string_view DescriptorSetBytes() {
  return {reinterpret_cast<const char*>(kDescriptorSet), kDescriptorSet_size};
}

}  // namespace wsstep::proto

#endif  // WSSTEP_PROTO_DESCRIPTOR_SET_H_
