/* text_buf.h -- a growable byte buffer for text built off the main thread
 * (the metrics exposition, label values). Any thread; one owner at a time. */
#ifndef RAI_TEXT_BUF_H
#define RAI_TEXT_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; /* RedisModule_Alloc'd; not NUL-terminated */
    size_t len, cap;
} RAI_TextBuf;

void RAI_TextBufAppend(RAI_TextBuf *b, const char *s, size_t len);
void RAI_TextBufAppendStr(RAI_TextBuf *b, const char *s);
void RAI_TextBufAppendChar(RAI_TextBuf *b, char c);
void RAI_TextBufAppendU64(RAI_TextBuf *b, uint64_t v);
/* v / 10^6 in decimal with six fraction digits: microseconds as seconds. */
void RAI_TextBufAppendMicros(RAI_TextBuf *b, uint64_t us);
/* name="value" with the value as the text format (0.0.4) needs it: UTF-8,
 * with backslash, double quote and line feed escaped. A Redis key may hold
 * any bytes, so a byte that is not part of valid UTF-8, or a control
 * character other than line feed, becomes the four characters \xHH of the
 * value (written \\xHH). */
void RAI_TextBufAppendLabel(RAI_TextBuf *b, const char *name, const char *value, size_t len);
/* The contents as a NUL-terminated string the caller owns; the buffer is emptied. */
char *RAI_TextBufTake(RAI_TextBuf *b, size_t *len);
void RAI_TextBufFree(RAI_TextBuf *b);

#endif
