#pragma once
// The counters of a running switch as text for people or JSON for scripts
// (`vdtu switch stat [--json]`).

#include <string>

#include "forwarding_engine.hpp"
#include "port_protocol.hpp"

namespace vdtu::net {

std::string render_report(const ForwardingEngine& engine, wire::ReportFormat format);

}  // namespace vdtu::net
