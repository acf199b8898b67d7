/*
 * c-normalize: an example weir plugin in C (ABI v1, docs/plugin-abi.md).
 *
 * It normalizes a flat JSON object: string values are lowercased (ASCII) and
 * trimmed of surrounding spaces; numbers are clamped into [min, max] when the
 * route's config gives them ({"min":0,"max":1000}). Keys, nested objects and
 * arrays pass through unchanged.
 *
 * Build (wasi-libc, reactor):
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o c-normalize.wasm normalize.c
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WEIR_IMPORT(name) __attribute__((import_module("weir"), import_name(name)))
#define WEIR_EXPORT(name) __attribute__((export_name(name)))

WEIR_IMPORT("set_output") void weir_set_output(const char *ptr, int32_t len);
WEIR_IMPORT("set_error") void weir_set_error(const char *ptr, int32_t len);
WEIR_IMPORT("config") int32_t weir_config(char *buf, int32_t cap);

WEIR_EXPORT("weir_abi_version") int32_t abi_version(void) { return 1; }

/* The input region: the host may reuse it for later inputs that fit, so it is
 * only ever replaced by a larger one. */
static char *in_buf;
static int32_t in_cap;

WEIR_EXPORT("weir_alloc") char *weir_alloc(int32_t size) {
    if (size <= in_cap) return in_buf;
    char *p = realloc(in_buf, (size_t)size);
    if (!p) return 0;
    in_buf = p;
    in_cap = size;
    return in_buf;
}

/* A growable output buffer, reused across calls. */
static char *out;
static size_t out_len, out_cap;

static int emit(const char *p, size_t n) {
    if (out_len + n > out_cap) {
        size_t c = out_cap ? out_cap : 256;
        while (c < out_len + n) c *= 2;
        char *q = realloc(out, c);
        if (!q) return 0;
        out = q;
        out_cap = c;
    }
    memcpy(out + out_len, p, n);
    out_len += n;
    return 1;
}

static int32_t fail(const char *msg) {
    weir_set_error(msg, (int32_t)strlen(msg));
    return 1;
}

static size_t skip_ws(const char *s, size_t i, size_t n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* Returns the index just past the string starting at s[i] == '"', or 0. */
static size_t end_of_string(const char *s, size_t i, size_t n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return 0;
}

/* Returns the index just past the value starting at s[i], or 0. Nested
 * objects and arrays are skipped by bracket depth, honouring strings. */
static size_t end_of_value(const char *s, size_t i, size_t n) {
    if (i >= n) return 0;
    if (s[i] == '"') return end_of_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            char c = s[i];
            if (c == '"') {
                size_t e = end_of_string(s, i, n);
                if (!e) return 0;
                i = e - 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return 0;
    }
    size_t start = i;
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') i++;
    return i > start ? i : 0;
}

/* Reads a number for key from the flat config object, if present. */
static int config_number(const char *cfg, size_t n, const char *key, double *v) {
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 2 <= n; i++) {
        if (cfg[i] == '"' && strncmp(cfg + i + 1, key, klen) == 0 && cfg[i + 1 + klen] == '"') {
            size_t j = skip_ws(cfg, i + klen + 2, n);
            if (j < n && cfg[j] == ':') {
                char tmp[64];
                j = skip_ws(cfg, j + 1, n);
                size_t e = end_of_value(cfg, j, n);
                if (!e || e - j >= sizeof tmp) return 0;
                memcpy(tmp, cfg + j, e - j);
                tmp[e - j] = 0;
                char *end;
                *v = strtod(tmp, &end);
                return end != tmp;
            }
        }
    }
    return 0;
}

static char cfg_buf[4096];

WEIR_EXPORT("weir_call") int32_t weir_call(const char *s, int32_t len) {
    size_t n = (size_t)len;
    double lo = 0, hi = 0;
    int has_lo = 0, has_hi = 0;
    int32_t cn = weir_config(cfg_buf, sizeof cfg_buf);
    if (cn > (int32_t)sizeof cfg_buf) return fail("config is larger than 4 KiB");
    if (cn > 0) {
        has_lo = config_number(cfg_buf, (size_t)cn, "min", &lo);
        has_hi = config_number(cfg_buf, (size_t)cn, "max", &hi);
    }

    out_len = 0;
    size_t i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{') return fail("input is not a JSON object");
    if (!emit("{", 1)) return fail("out of memory");
    i = skip_ws(s, i + 1, n);
    int first = 1;
    while (i < n && s[i] != '}') {
        if (!first) {
            if (s[i] != ',') return fail("expected ',' between members");
            if (!emit(",", 1)) return fail("out of memory");
            i = skip_ws(s, i + 1, n);
        }
        first = 0;
        if (i >= n || s[i] != '"') return fail("expected a string key");
        size_t kend = end_of_string(s, i, n);
        if (!kend) return fail("unterminated key");
        if (!emit(s + i, kend - i) || !emit(":", 1)) return fail("out of memory");
        i = skip_ws(s, kend, n);
        if (i >= n || s[i] != ':') return fail("expected ':' after a key");
        i = skip_ws(s, i + 1, n);
        size_t vend = end_of_value(s, i, n);
        if (!vend) return fail("invalid value");
        if (s[i] == '"') {
            /* trim spaces inside the quotes, then lowercase */
            size_t a = i + 1, b = vend - 1;
            while (a < b && s[a] == ' ') a++;
            while (b > a && s[b - 1] == ' ' && s[b - 2] != '\\') b--;
            if (!emit("\"", 1)) return fail("out of memory");
            for (size_t k = a; k < b; k++) {
                char c = (char)tolower((unsigned char)s[k]);
                if (s[k] == '\\' && k + 1 < b) { /* keep escapes as they are */
                    if (!emit(s + k, 2)) return fail("out of memory");
                    k++;
                    continue;
                }
                if (!emit(&c, 1)) return fail("out of memory");
            }
            if (!emit("\"", 1)) return fail("out of memory");
        } else if ((s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) && (has_lo || has_hi)) {
            char tmp[64], num[64];
            if (vend - i >= sizeof tmp) return fail("number too long");
            memcpy(tmp, s + i, vend - i);
            tmp[vend - i] = 0;
            double v = strtod(tmp, 0);
            if (has_lo && v < lo) v = lo;
            if (has_hi && v > hi) v = hi;
            /* %.17g round-trips a double. */
            int m = snprintf(num, sizeof num, "%.17g", v);
            if (!emit(num, (size_t)m)) return fail("out of memory");
        } else {
            if (!emit(s + i, vend - i)) return fail("out of memory");
        }
        i = skip_ws(s, vend, n);
    }
    if (i >= n) return fail("unterminated object");
    if (!emit("}", 1)) return fail("out of memory");
    weir_set_output(out, (int32_t)out_len);
    return 0;
}
