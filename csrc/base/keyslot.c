/* keyslot.c -- cluster hash slots and glob matching (see the header). */
#include "base/keyslot.h"

#include <stdint.h>

static uint16_t Crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

int RAI_KeySlot(const char *key, size_t len) {
    size_t open = 0;
    while (open < len && key[open] != '{') open++;
    if (open < len) {
        size_t close = open + 1;
        while (close < len && key[close] != '}') close++;
        if (close < len && close > open + 1) return Crc16(key + open + 1, close - open - 1) & 16383;
    }
    return Crc16(key, len) & 16383;
}

/* One [...] class at p (just past '['); moves *p past its ']'. */
static int ClassMatches(const char **p, const char *end, char c) {
    const char *s = *p;
    int negate = s < end && *s == '^', match = 0;
    if (negate) s++;
    for (; s < end && *s != ']'; s++) {
        if (*s == '\\' && s + 1 < end) {
            s++;
            if (*s == c) match = 1;
        } else if (s + 2 < end && s[1] == '-' && s[2] != ']') {
            char lo = s[0] < s[2] ? s[0] : s[2], hi = s[0] < s[2] ? s[2] : s[0];
            if (c >= lo && c <= hi) match = 1;
            s += 2;
        } else if (*s == c) {
            match = 1;
        }
    }
    *p = s < end ? s + 1 : s;
    return negate ? !match : match;
}

int RAI_GlobMatch(const char *pattern, size_t plen, const char *string, size_t slen) {
    const char *p = pattern, *pend = pattern + plen, *s = string, *send = string + slen;
    while (p < pend) {
        if (*p == '*') {
            while (p < pend && *p == '*') p++;
            if (p == pend) return 1;
            for (; s <= send; s++) {
                if (RAI_GlobMatch(p, (size_t)(pend - p), s, (size_t)(send - s))) return 1;
            }
            return 0;
        }
        if (s == send) return 0;
        if (*p == '?') {
            p++;
        } else if (*p == '[') {
            p++;
            if (!ClassMatches(&p, pend, *s)) return 0;
            s++;
            continue;
        } else {
            if (*p == '\\' && p + 1 < pend) p++;
            if (*p != *s) return 0;
            p++;
        }
        s++;
    }
    return s == send;
}
