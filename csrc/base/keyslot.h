/* keyslot.h -- Redis Cluster's hash slot of a key, and glob matching of
 * names: the two pure functions the function commands need from Redis that
 * the 7.0 module API does not offer. */
#ifndef RAI_KEYSLOT_H
#define RAI_KEYSLOT_H

#include <stddef.h>

/* The cluster slot (0..16383) of a key: CRC16 (XMODEM) of the key, or of the
 * part inside the first non-empty {...}, modulo 16384. */
int RAI_KeySlot(const char *key, size_t len);

/* Whether `string` matches the glob `pattern` (*, ?, [...], \ escapes), as
 * Redis matches FUNCTION LIST LIBRARYNAME and KEYS patterns. */
int RAI_GlobMatch(const char *pattern, size_t plen, const char *string, size_t slen);

#endif
