/* dns/dns_rr.h — the TLSA resource record as the resolver hands it out
 * (RFC 6698 §2.1 wire fields), and its storage. What SMTP may use of a
 * record (RFC 7672 §3.1) is dane/tlsa.h's business, not the resolver's.
 *
 * Contract: plain data; mxg_tlsa_copy() is the one allocator of record
 * blocks (free(*out) releases the records and their data together). */
#ifndef MXG_DNS_RR_H
#define MXG_DNS_RR_H

#include <stddef.h>
#include <stdint.h>

/* The most association data a TLSA record can carry: RDATA is at most
 * 65535 octets, three of them the fields. Nothing smaller is a limit of
 * mxguard: every record the DNS can deliver is kept whole (DESIGN §10). */
#define MXG_TLSA_DATA_MAX 65532

/* One record. data points to len octets owned by whoever holds the record
 * (a dns result, a block from mxg_tlsa_copy(), a test's buffer); it may be
 * NULL when len is 0. */
struct mxg_tlsa_rr {
    uint8_t usage, selector, mtype;
    uint16_t len;
    uint8_t *data;
};

/* Copies the records in[i] (0 <= i < n) with keep == NULL or keep[i] != 0
 * into one heap block sized to them: the records, then their data (each
 * copy's data points into the block; free(*out) releases everything).
 * Order is kept. Returns how many were copied (*out NULL when none), or -1
 * when out of memory (*out NULL). */
int mxg_tlsa_copy(const struct mxg_tlsa_rr *in, int n, const unsigned char *keep,
                  struct mxg_tlsa_rr **out);

#endif
