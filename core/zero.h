/* core/zero.h — zeroing the small parts of a large struct around members that
 * are left unzeroed on purpose (big tables whose used part is tracked by a
 * count, text behind a NUL): everything between or after named members, so a
 * member added there later is zeroed too, with no layout assumption to break.
 *
 * Contract: macros only; p points to a T; member a precedes member b. */
#ifndef MXG_ZERO_H
#define MXG_ZERO_H

#include <stddef.h>
#include <string.h>

#define MXG_END_OF(T, a) (offsetof(T, a) + sizeof(((T *)0)->a))

/* Zero the octets of *p from the end of member a to the start of member b. */
#define MXG_ZERO_BETWEEN(p, T, a, b)                                                          \
    memset((char *)(p) + MXG_END_OF(T, a), 0, offsetof(T, b) - MXG_END_OF(T, a))

/* Zero the octets of *p after member a (members added after it, tail padding). */
#define MXG_ZERO_AFTER(p, T, a) memset((char *)(p) + MXG_END_OF(T, a), 0, sizeof(T) - MXG_END_OF(T, a))

#endif
