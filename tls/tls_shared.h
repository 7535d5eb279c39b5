/* tls/tls_shared.h — a fixed-size store of serialized TLS sessions shared by
 * processes (server.workers > 1): the upstream TLS session cache of every
 * worker, so a session one worker's full handshake brought resumes another
 * worker's connection to the same (MX address, requirement) key.
 *
 * What it holds: opaque byte strings (i2d_SSL_SESSION; tls_engine.c does the
 * (de)serializing) under the caller's key (at most MXG_TLS_SHARED_KEY_MAX
 * octets), each with an expiry (wall-clock seconds: the ticket lifetime) and
 * a take-once flag (a TLS 1.3 ticket is used once; a TLS 1.2 session stays).
 *
 * Memory: one MAP_SHARED anonymous mapping made by mxg_tls_shared_new()
 * before fork() and inherited; mxg_tls_shared_size() octets for n entries
 * (MXG_TLS_SHARED_SLOT octets of data per entry plus a small header; pages
 * are touched only as entries are used). Nothing in it is a pointer, so any
 * process may map it anywhere. A session longer than MXG_TLS_SHARED_SLOT is
 * not stored (put returns 0; the next connection does a full handshake).
 *
 * Replacement: at most MXG_TLS_SHARED_PER_KEY entries per key (the key's
 * oldest makes room), then a free or expired slot, then the least recently
 * stored/used entry of the whole table.
 *
 * Concurrency: every call holds the table's process-shared robust mutex
 * (copies in and out happen under it; no reference into the table is ever
 * handed out). A process that dies holding it may have left an entry
 * half-written: the next call that takes the mutex empties the whole table
 * (logged; core/shm_mutex.h with no quarantine) and goes on — no entry from
 * before is ever returned, so never a wrong session; the next handshakes are
 * full ones and store afresh. A lock that fails: nothing found, nothing
 * stored (a full handshake).
 *
 * Generation: a counter in the mapping, raised by the master when its
 * settings change (SIGHUP); workers put it in their keys
 * (tls_engine.h mxg_tls_resume_clear), so a worker restarted after a reload
 * and the ones that reloaded agree, and one still on the old settings does
 * not share with them. */
#ifndef MXG_TLS_SHARED_H
#define MXG_TLS_SHARED_H

#include <stddef.h>
#include <stdint.h>

#define MXG_TLS_SHARED_SLOT 4096   /* octets of one serialized session, at most */
#define MXG_TLS_SHARED_KEY_MAX 96  /* octets of a key, at most */
#define MXG_TLS_SHARED_PER_KEY 4   /* entries under one key, at most */

struct mxg_tls_shared;

/* The mapping's size for max_entries entries (0 for max_entries < 1). */
size_t mxg_tls_shared_size(int max_entries);
/* A new shared table (zeroed, generation 0); NULL when max_entries < 1 or
 * the mapping or its mutex cannot be made. */
struct mxg_tls_shared *mxg_tls_shared_new(int max_entries);
/* Unmap this process's view (the other processes keep theirs). */
void mxg_tls_shared_free(struct mxg_tls_shared *s);

/* Store a copy of data (len octets) under key, valid until `expires`
 * (time(NULL) seconds), take-once if once != 0. Returns 1 when stored, 0 when
 * not (len 0 or above MXG_TLS_SHARED_SLOT, a bad key, already expired at
 * `now`, or the table's lock failing). */
int mxg_tls_shared_put(struct mxg_tls_shared *s, const void *key, size_t keylen, const void *data,
                       size_t len, int64_t expires, int once, int64_t now);
/* The newest unexpired entry under key copied into buf (cap octets, at least
 * MXG_TLS_SHARED_SLOT to fit any), its length in *len: returns 1; a take-once
 * entry is removed, another one becomes the most recently used. Expired
 * entries of the key are dropped on the way. 0 when there is none (or the
 * lock fails, or the entry does not fit cap: it is then dropped). */
int mxg_tls_shared_take(struct mxg_tls_shared *s, const void *key, size_t keylen, int64_t now,
                        void *buf, size_t cap, size_t *len);
/* Drop the entries under key whose data is exactly data (len octets): what a
 * take returned and the caller could not use (it does not deserialize, or
 * OpenSSL refuses it) — a kept TLS 1.2 entry would otherwise be offered again
 * first. An entry stored since under the key with other data stays. Returns
 * how many were dropped (0 also when the table's lock fails). */
int mxg_tls_shared_drop(struct mxg_tls_shared *s, const void *key, size_t keylen, const void *data,
                        size_t len);
/* Entries stored now (expired ones included until they are dropped). */
int mxg_tls_shared_count(struct mxg_tls_shared *s);
/* Forget every entry. */
void mxg_tls_shared_clear(struct mxg_tls_shared *s);
/* The settings generation (read), and raise it by one (returns the new one). */
uint64_t mxg_tls_shared_generation(const struct mxg_tls_shared *s);
uint64_t mxg_tls_shared_next_generation(struct mxg_tls_shared *s);
/* Raise the generation to from + 1 only if it is still from (nobody raised it
 * since the caller last looked); returns the generation now, raised or not. */
uint64_t mxg_tls_shared_advance(struct mxg_tls_shared *s, uint64_t from);
/* 1 when the table cannot be used now (its lock fails), else 0. */
int mxg_tls_shared_poisoned(struct mxg_tls_shared *s);
/* Tests only: take the mutex and keep it (a process that then dies holding
 * it makes the next locker empty the table). */
void mxg_tls_shared_test_hold(struct mxg_tls_shared *s);

#endif
