#include "vdtu/kif.hpp"

namespace vdtu::kif {

std::string_view to_string(Error e) {
  switch (e) {
    case Error::kNone: return "no error";
    case Error::kInvalidArgs: return "invalid arguments";
    case Error::kUnknownOpcode: return "unknown opcode";
    case Error::kMalformed: return "malformed message";
    case Error::kNoSuchCap: return "no capability at that selector";
    case Error::kWrongType: return "capability of the wrong type";
    case Error::kSelectorInUse: return "destination selector in use";
    case Error::kNoPerm: return "permission denied";
    case Error::kNotRevocable: return "not revocable";
    case Error::kOutOfMemory: return "out of memory";
    case Error::kNoSuchService: return "no such service";
    case Error::kServiceFailed: return "service failed";
    case Error::kEndpointFailed: return "endpoint configuration failed";
    case Error::kNotSupported: return "not supported";
    case Error::kExists: return "exists already";
    case Error::kServiceBusy: return "service busy";
  }
  return "unknown error";
}

}  // namespace vdtu::kif
