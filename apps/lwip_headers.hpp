#pragma once
// lwIP (Debian's liblwip-dev: NO_SYS=0, its unix port) from C++. Its
// lwipopts.h declares the core-locking hooks outside any extern "C", so
// everything is included with C linkage here.

extern "C" {
#include <lwip/etharp.h>
#include <lwip/init.h>
#include <lwip/ip_addr.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/tcp.h>
#include <lwip/tcpip.h>
#include <lwip/udp.h>
#include <netif/ethernet.h>
#if LWIP_IPV6
#include <lwip/ethip6.h>
#endif
}
