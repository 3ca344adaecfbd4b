-- Wireshark/tshark dissector for vdtu (written for this repository).
--
--   * `vdtu trace` files: pcapng, link type DLT_USER0 (147): a 24-byte
--     capture header (node, direction, PEs, endpoints), the gem5 DTU header
--     (25 bytes), the first bytes of the payload. Syscalls (to a kernel's
--     endpoint 0), their replies and kernelcalls (to a kernel's endpoint 2)
--     are decoded by opcode name.
--   * Bridge datagrams on UDP (any port: found by their first bytes):
--     plain frames (magic "VDBR") with the bridge messages inside them;
--     sealed datagrams only by their outer fields (kind, session, counter),
--     handshake messages by their clear fields.
--
-- Use: tshark -X lua_script:tools/wireshark/vdtu.lua -r trace.pcapng
--      or copy it into ~/.local/lib/wireshark/plugins/.
-- Layouts: src/node/trace_record.hpp, include/vdtu/message_header.hpp,
-- include/vdtu/kif.hpp, src/kernel/kernelcalls.hpp, src/bridge/frame.hpp,
-- src/bridge/session_format.hpp, src/node/bridge_messages.hpp, docs/PROTOCOL.md.

local SYSCALLS = {
  [0] = "PAGEFAULT", [1] = "CREATESRV", [2] = "CREATESESS", [3] = "CREATESESSAT", [4] = "CREATEGATE",
  [5] = "CREATEVPE", [6] = "CREATEMAP", [7] = "ATTACHRB", [8] = "DETACHRB", [9] = "EXCHANGE",
  [10] = "VPECTRL", [11] = "DELEGATE", [12] = "OBTAIN", [13] = "ACTIVATE", [14] = "REQMEM",
  [15] = "DERIVEMEM", [16] = "REVOKE", [17] = "EXIT", [18] = "NOOP",
}
local KERNELCALLS = {
  [0] = "CONNECT", [1] = "ANNOUNCE_SERVICE", [2] = "SERVICE_GONE", [3] = "OPEN_SESSION",
  [4] = "OPEN_SESSION_REPLY", [5] = "OBTAIN", [6] = "OBTAIN_REPLY", [7] = "DELEGATE", [8] = "DELEGATE_REPLY",
  [9] = "REVOKE", [10] = "REVOKE_DONE", [11] = "REMOVE_CHILD", [12] = "CLOSE_SESSION", [13] = "NO_CLIENTS",
  [14] = "FINISHED",
}
local ERRORS = {
  [0] = "NONE", [1] = "INVALID_ARGS", [2] = "UNKNOWN_OPCODE", [3] = "MALFORMED", [4] = "NO_SUCH_CAP",
  [5] = "WRONG_TYPE", [6] = "SELECTOR_IN_USE", [7] = "NO_PERM", [8] = "NOT_REVOCABLE", [9] = "OUT_OF_MEMORY",
  [10] = "NO_SUCH_SERVICE", [11] = "SERVICE_FAILED", [12] = "ENDPOINT_FAILED", [13] = "NOT_SUPPORTED",
  [14] = "EXISTS", [15] = "SERVICE_BUSY",
}
local DIRECTIONS = { [0] = "local", [1] = "to peer", [2] = "from peer" }
local FRAME_TYPES = { [1] = "DATA", [2] = "ACK" }
local BRIDGE_OPS = {
  [1] = "BIND", [2] = "UNBIND", [3] = "UNBOUND", [4] = "MESSAGE", [5] = "REPLY", [6] = "CREDIT",
  [7] = "HEARTBEAT", [8] = "MEMORY_REQUEST", [9] = "MEMORY_REPLY", [10] = "BATCH",
}
local SESSION_KINDS = { [1] = "DATA", [2] = "CONFIRM", [3] = "INIT", [4] = "COOKIE", [5] = "RESPONSE" }

local KERNEL_SYSCALL_EP = 0
local KERNELCALL_EP = 2
local FLAG_REPLY, FLAG_UNVERIFIED, FLAG_SENDER_PRIV, FLAG_RECEIVER_PRIV = 1, 2, 4, 8
local DTU_HEADER = 25
local CAPTURE_HEADER = 24

-- ---- the DTU message (shared by trace records and bridge frames) -------------

local dtu = Proto("vdtu_msg", "vdtu DTU message")
local f = dtu.fields
f.flags = ProtoField.uint8("vdtu_msg.flags", "Flags", base.HEX)
f.flag_reply = ProtoField.bool("vdtu_msg.flags.reply", "Reply", 8, nil, 0x01)
f.flag_grant = ProtoField.bool("vdtu_msg.flags.grant_credits", "Grant credits", 8, nil, 0x02)
f.flag_reply_enabled = ProtoField.bool("vdtu_msg.flags.reply_enabled", "Reply enabled", 8, nil, 0x04)
f.flag_pagefault = ProtoField.bool("vdtu_msg.flags.pagefault", "Pagefault", 8, nil, 0x08)
f.flag_reply_failed = ProtoField.bool("vdtu_msg.flags.reply_failed", "Reply failed", 8, nil, 0x10)
f.sender_pe = ProtoField.uint16("vdtu_msg.sender_pe", "Sender PE", base.DEC)
f.sender_ep = ProtoField.uint8("vdtu_msg.sender_ep", "Sender EP", base.DEC)
f.reply_ep = ProtoField.uint8("vdtu_msg.reply_ep", "Reply EP", base.DEC)
f.length = ProtoField.uint16("vdtu_msg.length", "Payload length", base.DEC)
f.sender_vpe = ProtoField.uint16("vdtu_msg.sender_vpe", "Sender VPE", base.DEC)
f.label = ProtoField.uint64("vdtu_msg.label", "Label", base.HEX)
f.replylabel = ProtoField.uint64("vdtu_msg.replylabel", "Reply label", base.HEX)
f.payload = ProtoField.bytes("vdtu_msg.payload", "Payload (captured part)")
f.syscall = ProtoField.uint64("vdtu_msg.syscall", "Syscall", base.DEC, SYSCALLS)
f.syscall_arg = ProtoField.uint64("vdtu_msg.syscall.arg", "Argument", base.HEX)
f.error = ProtoField.uint64("vdtu_msg.error", "Error", base.DEC, ERRORS)
f.kernelcall = ProtoField.uint64("vdtu_msg.kernelcall", "Kernelcall", base.DEC, KERNELCALLS)
f.kernelcall_call = ProtoField.uint64("vdtu_msg.kernelcall.call", "Call id", base.DEC)
f.kernelcall_error = ProtoField.uint64("vdtu_msg.kernelcall.error", "Error", base.DEC, ERRORS)

local function name_of(table, value, what)
  return table[value] or string.format("%s %d", what, value)
end

-- `kind`: "syscall", "syscall_reply", "kernelcall" or nil (payload as bytes).
-- Returns a short summary for the Info column.
-- Adds each { field, offset, length } of `layout` (little-endian) under `tree`.
local function add_all(tree, tvb, layout)
  for _, e in ipairs(layout) do tree:add_le(e[1], tvb(e[2], e[3])) end
end

local function dissect_message(tvb, pinfo, tree, kind)
  if tvb:len() < DTU_HEADER then
    tree:add_expert_info(PI_MALFORMED, PI_ERROR, "shorter than a DTU header")
    return "truncated"
  end
  local t = tree:add(dtu, tvb(0, DTU_HEADER), "DTU header")
  local fl = t:add(f.flags, tvb(0, 1))
  fl:add(f.flag_reply, tvb(0, 1))
  fl:add(f.flag_grant, tvb(0, 1))
  fl:add(f.flag_reply_enabled, tvb(0, 1))
  fl:add(f.flag_pagefault, tvb(0, 1))
  fl:add(f.flag_reply_failed, tvb(0, 1))
  add_all(t, tvb, {
    { f.sender_pe, 1, 2 },
    { f.sender_ep, 3, 1 },
    { f.reply_ep, 4, 1 },
    { f.length, 5, 2 },
    { f.sender_vpe, 7, 2 },
    { f.label, 9, 8 },
    { f.replylabel, 17, 8 },
  })
  local is_reply = bit.band(tvb(0, 1):uint(), FLAG_REPLY) ~= 0
  local summary = string.format("PE %d ep %d%s", tvb(1, 2):le_uint(), tvb(3, 1):uint(), is_reply and " reply" or "")
  local rest = tvb:len() - DTU_HEADER
  if rest <= 0 then return summary end
  local payload = tvb(DTU_HEADER, rest)
  local p = tree:add(f.payload, payload)
  if rest < 8 then return summary end
  local word = payload(0, 8):le_uint64():tonumber()
  if kind == "syscall" then
    p:add_le(f.syscall, payload(0, 8))
    for i = 1, 6 do
      if rest >= 8 + 8 * i then p:add_le(f.syscall_arg, payload(8 * i, 8)) end
    end
    return summary .. " syscall " .. name_of(SYSCALLS, word, "opcode")
  elseif kind == "syscall_reply" then
    p:add_le(f.error, payload(0, 8))
    return summary .. " syscall reply " .. name_of(ERRORS, word, "error")
  elseif kind == "kernelcall" then
    p:add_le(f.kernelcall, payload(0, 8))
    if rest >= 16 then p:add_le(f.kernelcall_call, payload(8, 8)) end
    if rest >= 24 then p:add_le(f.kernelcall_error, payload(16, 8)) end
    return summary .. " kernelcall " .. name_of(KERNELCALLS, word, "opcode")
  end
  return summary
end

-- ---- trace records (DLT_USER0) -----------------------------------------------

local trace = Proto("vdtu", "vdtu trace record")
local tf = trace.fields
tf.version = ProtoField.uint8("vdtu.version", "Version", base.DEC)
tf.direction = ProtoField.uint8("vdtu.direction", "Direction", base.DEC, DIRECTIONS)
tf.flags = ProtoField.uint8("vdtu.flags", "Flags", base.HEX)
tf.flag_reply = ProtoField.bool("vdtu.flags.reply", "Reply channel", 8, nil, FLAG_REPLY)
tf.flag_unverified = ProtoField.bool("vdtu.flags.unverified", "Unverified (acked during the copy)", 8, nil,
  FLAG_UNVERIFIED)
tf.flag_sender_priv = ProtoField.bool("vdtu.flags.sender_kernel", "Sender is a kernel", 8, nil, FLAG_SENDER_PRIV)
tf.flag_receiver_priv = ProtoField.bool("vdtu.flags.receiver_kernel", "Receiver is a kernel", 8, nil,
  FLAG_RECEIVER_PRIV)
tf.node = ProtoField.uint16("vdtu.node", "Node", base.DEC)
tf.sender_pe = ProtoField.uint16("vdtu.sender_pe", "Sender PE", base.DEC)
tf.receiver_pe = ProtoField.uint16("vdtu.receiver_pe", "Receiver PE", base.DEC)
tf.sender_ep = ProtoField.uint8("vdtu.sender_ep", "Sender EP", base.DEC)
tf.receiver_ep = ProtoField.uint8("vdtu.receiver_ep", "Receiver EP", base.DEC)
tf.captured = ProtoField.uint16("vdtu.captured", "Captured bytes", base.DEC)
tf.length = ProtoField.uint16("vdtu.length", "Message length", base.DEC)
tf.index = ProtoField.uint32("vdtu.index", "Index in channel", base.DEC)
tf.missed = ProtoField.uint32("vdtu.missed", "Missed before this", base.DEC)

function trace.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol = "vdtu"
  local t = tree:add(trace, tvb(0, math.min(CAPTURE_HEADER, tvb:len())), "vdtu capture")
  if tvb:len() < CAPTURE_HEADER then
    t:add_expert_info(PI_MALFORMED, PI_ERROR, "shorter than a capture header")
    return
  end
  t:add_le(tf.version, tvb(0, 1))
  t:add_le(tf.direction, tvb(1, 1))
  local fl = t:add(tf.flags, tvb(2, 1))
  fl:add(tf.flag_reply, tvb(2, 1))
  fl:add(tf.flag_unverified, tvb(2, 1))
  fl:add(tf.flag_sender_priv, tvb(2, 1))
  fl:add(tf.flag_receiver_priv, tvb(2, 1))
  add_all(t, tvb, {
    { tf.node, 4, 2 },
    { tf.sender_pe, 6, 2 },
    { tf.receiver_pe, 8, 2 },
    { tf.sender_ep, 10, 1 },
    { tf.receiver_ep, 11, 1 },
    { tf.captured, 12, 2 },
    { tf.length, 14, 2 },
    { tf.index, 16, 4 },
    { tf.missed, 20, 4 },
  })
  local flags = tvb(2, 1):uint()
  local receiver_ep = tvb(11, 1):uint()
  local reply = bit.band(flags, FLAG_REPLY) ~= 0
  local kind = nil
  local direction = tvb(1, 1):uint()
  -- A kernel sending to a PE on another node talks to its kernel: the node
  -- cannot vouch for the remote receiver, the cluster's layout can.
  local to_kernel = bit.band(flags, FLAG_RECEIVER_PRIV) ~= 0 or
      (direction == 1 and bit.band(flags, FLAG_SENDER_PRIV) ~= 0)
  if not reply and to_kernel then
    if receiver_ep == KERNEL_SYSCALL_EP and bit.band(flags, FLAG_RECEIVER_PRIV) ~= 0 then kind = "syscall" end
    if receiver_ep == KERNELCALL_EP then kind = "kernelcall" end
  elseif reply and bit.band(flags, FLAG_SENDER_PRIV) ~= 0 and bit.band(flags, FLAG_RECEIVER_PRIV) == 0 then
    kind = "syscall_reply"
  end
  pinfo.cols.src = string.format("PE %d:%d", tvb(6, 2):le_uint(), tvb(10, 1):uint())
  pinfo.cols.dst = string.format("PE %d:%d", tvb(8, 2):le_uint(), receiver_ep)
  local summary = dissect_message(tvb(CAPTURE_HEADER):tvb(), pinfo, tree, kind)
  pinfo.cols.info = string.format("node %d %s: %s", tvb(4, 2):le_uint(), DIRECTIONS[tvb(1, 1):uint()] or "?",
    summary)
end

local encaps = wtap_encaps or wtap
DissectorTable.get("wtap_encap"):add(encaps.USER0, trace)

-- ---- bridge datagrams on UDP ---------------------------------------------------

local bridge = Proto("vdtu_bridge", "vdtu bridge")
local bf = bridge.fields
bf.magic = ProtoField.uint32("vdtu_bridge.magic", "Magic", base.HEX)
bf.version = ProtoField.uint8("vdtu_bridge.version", "Version", base.DEC)
bf.type = ProtoField.uint8("vdtu_bridge.type", "Frame type", base.DEC, FRAME_TYPES)
bf.src = ProtoField.uint16("vdtu_bridge.src_node", "Source node", base.DEC)
bf.dst = ProtoField.uint16("vdtu_bridge.dst_node", "Destination node", base.DEC)
bf.window = ProtoField.uint16("vdtu_bridge.window", "Window", base.DEC)
bf.length = ProtoField.uint32("vdtu_bridge.length", "Payload length", base.DEC)
bf.session = ProtoField.uint64("vdtu_bridge.session", "Session", base.HEX)
bf.seq = ProtoField.uint64("vdtu_bridge.seq", "Sequence", base.DEC)
bf.ack = ProtoField.uint64("vdtu_bridge.ack", "Ack", base.DEC)
bf.op = ProtoField.uint8("vdtu_bridge.op", "Bridge message", base.DEC, BRIDGE_OPS)
bf.binding = ProtoField.uint32("vdtu_bridge.binding", "Binding", base.DEC)
bf.body = ProtoField.bytes("vdtu_bridge.body", "Body")
bf.sealed_kind = ProtoField.uint8("vdtu_bridge.sealed.kind", "Session message", base.DEC, SESSION_KINDS)
bf.sealed_version = ProtoField.uint8("vdtu_bridge.sealed.version", "Version", base.DEC)
bf.sealed_session = ProtoField.uint64("vdtu_bridge.sealed.session", "Session", base.HEX)
bf.sealed_counter = ProtoField.uint64("vdtu_bridge.sealed.counter", "Counter (nonce)", base.DEC)
bf.sealed_data = ProtoField.bytes("vdtu_bridge.sealed.ciphertext", "Ciphertext and tag")
bf.hs_src = ProtoField.uint16("vdtu_bridge.handshake.src", "Source node", base.DEC)
bf.hs_dst = ProtoField.uint16("vdtu_bridge.handshake.dst", "Destination node", base.DEC)
bf.hs_rest = ProtoField.bytes("vdtu_bridge.handshake.body", "Keys, cookie, MAC")

local FRAME_HEADER = 40
local MAGIC = 0x52424456
local HANDSHAKE_SIZES = { [3] = 94, [4] = 86, [5] = 110 }
local SEALED_MIN = 18 + 16

-- A BATCH body: each message as a 16-bit little-endian length, then the
-- message itself (op, binding, body).
local function dissect_batch(tvb, pinfo, tree)
  local at, names = 0, {}
  while at + 2 <= tvb:len() do
    local length = tvb(at, 2):le_uint()
    if length < 5 or at + 2 + length > tvb:len() then break end
    local op = tvb(at + 2, 1):uint()
    local sub = tree:add(bridge, tvb(at, 2 + length), "batched " .. (BRIDGE_OPS[op] or "?"))
    sub:add_le(bf.op, tvb(at + 2, 1))
    sub:add_le(bf.binding, tvb(at + 3, 4))
    if (op == 4 or op == 5) and length > 5 then
      dissect_message(tvb(at + 7, length - 5):tvb(), pinfo, sub, nil)
    end
    names[#names + 1] = BRIDGE_OPS[op] or "?"
    at = at + 2 + length
  end
  return " [" .. table.concat(names, ", ") .. "]"
end

local function dissect_plain(tvb, pinfo, tree)
  local t = tree:add(bridge, tvb(), "vdtu bridge frame")
  add_all(t, tvb, {
    { bf.magic, 0, 4 },
    { bf.version, 4, 1 },
    { bf.type, 5, 1 },
    { bf.src, 6, 2 },
    { bf.dst, 8, 2 },
    { bf.window, 10, 2 },
    { bf.length, 12, 4 },
    { bf.session, 16, 8 },
    { bf.seq, 24, 8 },
    { bf.ack, 32, 8 },
  })
  local ftype = tvb(5, 1):uint()
  local info = string.format("node %d -> %d %s", tvb(6, 2):le_uint(), tvb(8, 2):le_uint(),
    FRAME_TYPES[ftype] or "?")
  if ftype == 1 and tvb:len() >= FRAME_HEADER + 5 then
    local op = tvb(FRAME_HEADER, 1):uint()
    t:add_le(bf.op, tvb(FRAME_HEADER, 1))
    t:add_le(bf.binding, tvb(FRAME_HEADER + 1, 4))
    info = info .. " " .. (BRIDGE_OPS[op] or "?")
    local body_at = FRAME_HEADER + 5
    if tvb:len() > body_at then
      if op == 4 or op == 5 then
        info = info .. " " .. dissect_message(tvb(body_at):tvb(), pinfo, t, nil)
      elseif op == 10 then
        info = info .. dissect_batch(tvb(body_at):tvb(), pinfo, t)
      else
        t:add(bf.body, tvb(body_at))
      end
    end
  else
    info = info .. string.format(" ack %s", tostring(tvb(32, 8):le_uint64()))
  end
  pinfo.cols.info = info
end

local function dissect_sealed(tvb, pinfo, tree, kind)
  local t = tree:add(bridge, tvb(), "vdtu bridge, sealed")
  t:add_le(bf.sealed_kind, tvb(0, 1))
  t:add_le(bf.sealed_version, tvb(1, 1))
  if HANDSHAKE_SIZES[kind] then
    t:add_le(bf.hs_src, tvb(2, 2))
    t:add_le(bf.hs_dst, tvb(4, 2))
    t:add(bf.hs_rest, tvb(6))
    pinfo.cols.info = string.format("handshake %s node %d -> %d", SESSION_KINDS[kind], tvb(2, 2):le_uint(),
      tvb(4, 2):le_uint())
  else
    t:add_le(bf.sealed_session, tvb(2, 8))
    t:add_le(bf.sealed_counter, tvb(10, 8))
    t:add(bf.sealed_data, tvb(18))
    pinfo.cols.info = string.format("sealed %s counter %s", SESSION_KINDS[kind], tostring(tvb(10, 8):le_uint64()))
  end
end

local function heuristic(tvb, pinfo, tree)
  local n = tvb:len()
  if n >= FRAME_HEADER and tvb(0, 4):le_uint() == MAGIC and tvb(4, 1):uint() == 1 then
    pinfo.cols.protocol = "vdtu bridge"
    dissect_plain(tvb, pinfo, tree)
    return true
  end
  if n < 6 or tvb(1, 1):uint() ~= 1 then return false end
  local kind = tvb(0, 1):uint()
  if (HANDSHAKE_SIZES[kind] and n == HANDSHAKE_SIZES[kind]) or ((kind == 1 or kind == 2) and n >= SEALED_MIN) then
    pinfo.cols.protocol = "vdtu bridge"
    dissect_sealed(tvb, pinfo, tree, kind)
    return true
  end
  return false
end

bridge:register_heuristic("udp", heuristic)
