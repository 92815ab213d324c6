/* misc.c — clock, progress reporting on stderr, text normalization. */
#include "base/base.h"

#include <ctype.h>
#include <time.h>
#include <unistd.h>

double tw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tw_progress_begin(tw_progress *p, const char *label, uint64_t total, bool enabled)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = p->t_last = tw_now();
    p->enabled = enabled;
    p->tty = enabled && isatty(STDERR_FILENO);
}

static void fmt_eta(double s, char *out, size_t n)
{
    if (s < 0 || s > 1e7) { snprintf(out, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, n, "%02d:%02d", t / 60, t % 60);
}

static void progress_print(tw_progress *p, bool final)
{
    double now = tw_now(), el = now - p->t_start;
    double rate = el > 0 ? (double)p->done / el : 0;
    char eta[32];
    fmt_eta(rate > 0 && p->total ? (double)(p->total - p->done) / rate : -1, eta, sizeof eta);
    double frac = p->total ? (double)p->done / (double)p->total : 0;
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r%s [%s] %llu/%llu %.1f/s ETA %s%s", p->label, bar,
                (unsigned long long)p->done, (unsigned long long)p->total, rate, eta, final ? "\n" : "");
    } else {
        fprintf(stderr, "%s: %llu/%llu (%.0f%%) %.1f/s ETA %s\n", p->label, (unsigned long long)p->done,
                (unsigned long long)p->total, 100 * frac, rate, eta);
    }
    fflush(stderr);
}

void tw_progress_update(tw_progress *p, uint64_t done)
{
    if (!p->enabled) return;
    p->done = done;
    double now = tw_now();
    if (now - p->t_last < (p->tty ? 0.1 : 5.0)) return;
    p->t_last = now;
    progress_print(p, false);
}

void tw_progress_end(tw_progress *p)
{
    if (!p->enabled) return;
    p->done = p->total;
    progress_print(p, true);
}

size_t tw_normalize_text(const char *s, size_t n, char *out)
{
    size_t o = 0;
    bool pending_space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && (isspace(c) || ispunct(c))) {
            /* punctuation is dropped; whitespace collapses to one space */
            if (isspace(c)) pending_space = o > 0;
            continue;
        }
        if (pending_space) {
            out[o++] = ' ';
            pending_space = false;
        }
        out[o++] = (char)(c < 0x80 ? tolower(c) : c);
    }
    out[o] = '\0';
    return o;
}

int tw_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
