/* text_buf.c -- a growable byte buffer with what the metrics text needs:
 * number formats (snprintf would be most of a scrape's cost) and label
 * values escaped for the exposition format. */
#include "base/text_buf.h"

#include <string.h>

#include "rm_api.h"

static void Reserve(RAI_TextBuf *b, size_t more) {
    if (b->len + more <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    b->data = RedisModule_Realloc(b->data, cap);
    b->cap = cap;
}

void RAI_TextBufAppend(RAI_TextBuf *b, const char *s, size_t len) {
    Reserve(b, len);
    memcpy(b->data + b->len, s, len);
    b->len += len;
}

void RAI_TextBufAppendStr(RAI_TextBuf *b, const char *s) { RAI_TextBufAppend(b, s, strlen(s)); }

void RAI_TextBufAppendChar(RAI_TextBuf *b, char c) {
    Reserve(b, 1);
    b->data[b->len++] = c;
}

void RAI_TextBufAppendU64(RAI_TextBuf *b, uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    Reserve(b, (size_t)n);
    while (n > 0) b->data[b->len++] = digits[--n];
}

void RAI_TextBufAppendMicros(RAI_TextBuf *b, uint64_t us) {
    RAI_TextBufAppendU64(b, us / 1000000);
    char frac[7] = ".000000";
    uint64_t f = us % 1000000;
    for (int i = 6; i >= 1; i--, f /= 10) frac[i] = (char)('0' + f % 10);
    RAI_TextBufAppend(b, frac, 7);
}

/* Length of the valid UTF-8 sequence at s, or 0 (overlong forms,
 * surrogates and code points past U+10FFFF are not valid). */
static size_t Utf8Len(const unsigned char *s, size_t left) {
    unsigned char c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

static void AppendLabelValue(RAI_TextBuf *b, const char *value, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)value;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n = Utf8Len(s + i, len - i);
        if (c == '\\' || c == '"') {
            char esc[2] = {'\\', (char)c};
            RAI_TextBufAppend(b, esc, 2);
        } else if (c == '\n') {
            RAI_TextBufAppend(b, "\\n", 2);
        } else if (n == 0 || c < 0x20 || c == 0x7F) {
            char esc[5] = {'\\', '\\', 'x', hex[c >> 4], hex[c & 15]};
            RAI_TextBufAppend(b, esc, 5);
            n = 1;
        } else {
            RAI_TextBufAppend(b, value + i, n);
        }
        i += n;
    }
}

void RAI_TextBufAppendLabel(RAI_TextBuf *b, const char *name, const char *value, size_t len) {
    RAI_TextBufAppendStr(b, name);
    RAI_TextBufAppend(b, "=\"", 2);
    AppendLabelValue(b, value, len);
    RAI_TextBufAppendChar(b, '"');
}

char *RAI_TextBufTake(RAI_TextBuf *b, size_t *len) {
    RAI_TextBufAppendChar(b, '\0');
    char *s = b->data;
    *len = b->len - 1;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void RAI_TextBufFree(RAI_TextBuf *b) {
    RedisModule_Free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
