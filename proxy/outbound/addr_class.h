/* proxy/outbound/addr_class.h — which outbound destination addresses are "ours"
 * rather than the Internet's (issue 16 defect 10: loop and SSRF protection).
 *
 * Contract:
 *  - mxg_addr_private(sa) names the special-purpose range an address is in,
 *    or returns NULL for an ordinary (global) address: IPv4 "this network"
 *    0/8, private 10/8, 172.16/12, 192.168/16, shared 100.64/10, loopback
 *    127/8, link-local 169.254/16, multicast 224/4, reserved 240/4 (with
 *    broadcast); IPv6 unspecified ::, loopback ::1, unique-local fc00::/7,
 *    link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, and
 *    the IPv4 ranges above when embedded (IPv4-mapped ::ffff:0:0/96,
 *    IPv4-compatible ::/96, NAT64 64:ff9b::/96). Other families: "non-IP".
 *  - mxg_addr_same_host(a, b) compares the addresses only (no port), an
 *    IPv4-mapped IPv6 address equal to its IPv4 form.
 * Pure functions, no state. */
#ifndef MXG_ADDR_CLASS_H
#define MXG_ADDR_CLASS_H

#include <sys/socket.h>

const char *mxg_addr_private(const struct sockaddr *sa);
int mxg_addr_same_host(const struct sockaddr *a, const struct sockaddr *b);

#endif
